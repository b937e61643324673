// LoRA Deck: the node's properties.models entries ({name, url, directory: "loras", hash, hash_type}) built from a
// loader node's "loradeck_models" ui output. ComfyUI saves them with the workflow; its missing-models dialog and
// LoRA Deck's name lookup on another machine read them. Pure: loading this module does nothing.
//
// Both checked frontends (1.35.9 and 1.58.1) validate these entries with their workflow schema, which requires
// name, directory and a parseable `url` (zod's url(): `new URL(url)` must not throw); an entry without one
// raises "Invalid workflow against zod schema" on every reopen and leaves the missing-models dialog blank.
// LoRA Deck never knows where a LoRA was downloaded from, so the url names the file by its content instead
// (`urn:sha256:<hex>`): true, offline, and what the dialog shows as the source when the file is missing.

export const DIRECTORY = "loras";
export const MISSING = "loradeck_missing"; // properties key: entries of files this machine lacks (shared_names.js)
export const LOADER_TYPES = new Set(["LoadLoRA|LoRADeck", "StackLoRA|LoRADeck", "LoRAList|LoRADeck",
  "LoadLoRAPair|LoRADeck", "LoRALoader|LoRADeck"]);
const SHA256 = /^[0-9a-f]{64}$/i;

export function contentUrl(sha256) {
  return `urn:sha256:${String(sha256).toLowerCase()}`;
}

/** One properties.models entry for a LoRA file. */
export function modelEntry(name, sha256) {
  const hash = String(sha256).toLowerCase();
  return { name, url: contentUrl(hash), directory: DIRECTORY, hash, hash_type: "SHA256" };
}

/** Valid entries of a "loradeck_models" ui list as properties.models entries. Files ComfyUI's own LoRA list
 * does not have (`listed: false`: the pack's demo LoRAs) are left out: the frontend would flag them missing. */
export function modelEntries(models) {
  if (!Array.isArray(models)) return [];
  return models
    .filter((m) => m && typeof m.name === "string" && m.name && m.listed !== false
      && SHA256.test(String(m.sha256 ?? "")))
    .map((m) => modelEntry(m.name, m.sha256));
}

/** `existing` properties.models with this node's LoRA entries replaced by `entries` (other folders kept). */
export function mergeModels(existing, entries) {
  const others = Array.isArray(existing) ? existing.filter((m) => m?.directory !== DIRECTORY) : [];
  return [...others, ...entries];
}

/** Entries written by older LoRA Deck versions lack `url`: give them one, so the schema check passes. */
export function repairModels(models) {
  if (!Array.isArray(models)) return models;
  return models.map((m) => (m && typeof m === "object" && m.directory === DIRECTORY && !m.url
    && SHA256.test(String(m.hash ?? "")) ? { ...m, url: contentUrl(m.hash) } : m));
}

/** A node's recorded LoRA entries: those in properties.models, then those kept for files this machine lacks. */
export function recordedEntries(node) {
  const lists = [node?.properties?.models, node?.properties?.[MISSING]].filter(Array.isArray);
  return lists.flat().filter((m) => m && typeof m === "object" && (m.directory ?? DIRECTORY) === DIRECTORY);
}

/** Hashes recorded for `name` with a node (properties.models, or properties.loradeck_missing). */
export function recordedHashes(node, name) {
  return recordedEntries(node).filter((m) => m.name === name && m.hash).map((m) => String(m.hash));
}

/** Entries kept for files this machine lacked, minus those now recorded under `names` (found after all). */
export function stillMissing(node, names) {
  const kept = node?.properties?.[MISSING];
  return Array.isArray(kept) ? kept.filter((m) => !names.includes(m?.name)) : [];
}
