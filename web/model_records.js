// LoRA Deck: the node's properties.models entries ({name, directory: "loras", hash, hash_type}) built from
// a loader node's "loradeck_models" ui output. ComfyUI saves them with the workflow; its missing-models
// dialog and LoRA Deck's name resolution on another machine read them. Pure: loading this module does nothing.

export const DIRECTORY = "loras";
export const LOADER_TYPES = new Set(["LoadLoRA|LoRADeck", "StackLoRA|LoRADeck"]);
const SHA256 = /^[0-9a-f]{64}$/i;

/** Valid entries of a "loradeck_models" ui list as properties.models entries. */
export function modelEntries(models) {
  if (!Array.isArray(models)) return [];
  return models
    .filter((m) => m && typeof m.name === "string" && m.name && SHA256.test(String(m.sha256 ?? "")))
    .map((m) => ({ name: m.name, directory: DIRECTORY, hash: String(m.sha256).toLowerCase(), hash_type: "SHA256" }));
}

/** `existing` properties.models with this node's LoRA entries replaced by `entries` (other folders kept). */
export function mergeModels(existing, entries) {
  const others = Array.isArray(existing) ? existing.filter((m) => m?.directory !== DIRECTORY) : [];
  return [...others, ...entries];
}

/** Hashes recorded for `name` in a node's properties.models. */
export function recordedHashes(node, name) {
  const models = node?.properties?.models;
  if (!Array.isArray(models)) return [];
  return models.filter((m) => m?.name === name && (m.directory ?? DIRECTORY) === DIRECTORY && m.hash)
    .map((m) => String(m.hash));
}
