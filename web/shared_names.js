// LoRA Deck: when a workflow opens, LoRA names of LoRA Deck nodes that this server does not have under that exact
// name are looked up by the rules the nodes use — same path with other separators, the hash recorded with the
// node anywhere in the LoRA folders, then a same-named file only if it is the only one and its hash matches —
// and the workflow is changed to the local name BEFORE the frontend checks for missing models, so nothing is
// flagged that the pack has found. A toast says what was matched and how; what cannot be matched is said too.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { resolveLora } from "./api_client.js";
import { parseRows, ROWS_TYPES, rowsText } from "./lora_rows.js";
import { DIRECTORY, repairModels } from "./model_records.js";

const NONE = "None";
// Widget positions of LoRA names in UI-format widgets_values (widget order is frozen public API).
export const NAME_SLOTS = { "LoadLoRA|LoRADeck": [0], "StackLoRA|LoRADeck": [1, 5, 9, 13],
  "LoadLoRAPair|LoRADeck": [0, 1] };

const HOW = {
  separators: () => "the same path written with other separators",
  hash: () => "the file with the SHA-256 recorded in the workflow (same content, other name)",
  "file name": (checked) => (checked
    ? "the only file with that file name, and its content matches the hash recorded in the workflow"
    : "the only file with that file name; the workflow recorded no hash, so its content was not checked"),
};

/** Plain words for one match: what was asked, what was found, and by which rule. */
export function matchText(answer) {
  const how = HOW[answer.how]?.(Boolean(answer.hash_checked)) ?? `matched by ${answer.how}`;
  return `"${answer.name}" → "${answer.found}": ${how}.`;
}

function toast(severity, detail) {
  const manager = app.extensionManager?.toast;
  if (typeof manager?.add === "function") manager.add({ severity, summary: "LoRA Deck", detail, life: 10000 });
  else console.info(`LoRA Deck: ${detail}`);
}

function hashesFor(node, name) {
  const models = Array.isArray(node?.properties?.models) ? node.properties.models : [];
  return models.filter((m) => m?.name === name && (m.directory ?? DIRECTORY) === DIRECTORY && m.hash)
    .map((m) => String(m.hash));
}

/** Every {get, set, hashes} LoRA name reference of one node in UI-format graph data. */
export function nameRefs(node) {
  const values = node?.widgets_values;
  if (!Array.isArray(values)) return [];
  if (ROWS_TYPES.has(node.type)) {
    const rows = parseRows(values[0]);
    return rows.map((row) => ({ get: () => row.lora_name, hashes: row.sha256 ? [row.sha256] : [], enabled: row.enabled,
      set: (name) => { row.lora_name = name; values[0] = rowsText(rows); } }));
  }
  return (NAME_SLOTS[node.type] ?? []).filter((i) => typeof values[i] === "string").map((i) => ({
    get: () => values[i], hashes: hashesFor(node, values[i]), set: (name) => { values[i] = name; } }));
}

function allNodes(graphData) {
  const subgraphs = graphData?.definitions?.subgraphs;
  const inner = Array.isArray(subgraphs) ? subgraphs.flatMap((s) => (Array.isArray(s?.nodes) ? s.nodes : [])) : [];
  return [...(Array.isArray(graphData?.nodes) ? graphData.nodes : []), ...inner].filter((n) => n && n.type);
}

/** The node's recorded entries for `from` now name `to`; when the frontend's own LoRA list does not have `to`
 * (the pack's demo LoRAs), they are dropped: the frontend would flag them as missing. */
function renameRecorded(node, from, to, listed) {
  const models = node?.properties?.models;
  if (!Array.isArray(models)) return;
  const ours = (entry) => entry?.name === from && (entry.directory ?? DIRECTORY) === DIRECTORY;
  if (!listed) node.properties.models = models.filter((entry) => !ours(entry));
  else for (const entry of models) if (ours(entry)) entry.name = to;
}

async function fixRef(node, ref, notes) {
  const wanted = ref.get();
  if (!wanted || wanted === NONE) return;
  const answer = await resolveLora(api, wanted, ref.hashes);
  if (answer?.found && answer.how !== "exact") {
    ref.set(answer.found);
    renameRecorded(node, wanted, answer.found, answer.listed !== false);
    notes.info.push(matchText(answer));
  } else if (!answer?.found && answer?.error && ref.enabled !== false) {
    notes.warn.push(`"${wanted}": ${answer.error}`);
  }
}

/** Point the LoRA names of every LoRA Deck node in `graphData` at this server's files; returns the notes. */
export async function fixGraph(graphData) {
  const notes = { info: [], warn: [] };
  const jobs = [];
  for (const node of allNodes(graphData)) {
    if (!(node.type in NAME_SLOTS) && !ROWS_TYPES.has(node.type)) continue;
    if (node.properties?.models) node.properties.models = repairModels(node.properties.models);
    for (const ref of nameRefs(node)) {
      jobs.push(fixRef(node, ref, notes).catch((error) => console.warn("LoRA Deck: could not look up", ref.get(), error)));
    }
  }
  await Promise.all(jobs);
  return notes;
}

app.registerExtension({
  name: "loradeck.SharedNames",
  // Awaited by the frontend before it configures the graph and looks for missing models (1.35.9 and 1.58.1).
  async beforeConfigureGraph(graphData) {
    const notes = await fixGraph(graphData);
    if (notes.info.length) toast("info", notes.info.join("\n"));
    if (notes.warn.length) toast("warn", notes.warn.join("\n"));
  },
});
