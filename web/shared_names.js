// LoRA Deck: when a workflow opens, LoRA names of LoRA Deck nodes that this server does not have under that exact
// name are looked up by the rules the nodes use — same path with other separators, the hash recorded with the
// node anywhere in the LoRA folders, then a same-named file only if it is the only one and its hash matches —
// and the workflow is changed to the local name BEFORE the frontend checks for missing models, so nothing is
// flagged that the pack has found. A toast says what was matched and how.
//
// A name that is nowhere is said once, in the node's own box (node_info.js), with the closest names. The frontends'
// own missing-model reports cannot help with such a file (there is no download address for it, only its hash) and
// name the node by its ID, so LoRA Deck keeps its nodes out of them: the hashes recorded for files this machine
// lacks move from properties.models (1.35.9's dialog reads those) to properties.loradeck_missing (read by LoRA
// Deck only, kept in the saved workflow), and the name widget of such a node keeps its own value among its choices
// (1.58.1 flags a model-file value that is not among its widget's choices).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { resolveLora } from "./api_client.js";
import { parseRows, ROWS_TYPES, rowsText } from "./lora_rows.js";
import { DIRECTORY, MISSING, recordedEntries, repairModels } from "./model_records.js";

const NONE = "None";
// Widget positions of LoRA names in UI-format widgets_values (widget order is frozen public API).
export const NAME_SLOTS = { "LoadLoRA|LoRADeck": [0], "StackLoRA|LoRADeck": [1, 5, 9, 13],
  "LoadLoRAPair|LoRADeck": [0, 1] };
const NAME_WIDGET = /^lora_name(_\d+|_high|_low)?$/;
const unresolved = new Map(); // node id in the workflow being opened -> its names that are nowhere here

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
  return recordedEntries(node).filter((m) => m.name === name && m.hash).map((m) => String(m.hash));
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

/** Where each of the node's names is here: {wanted, found (local name or null), listed, how, error} per ref. */
async function lookUp(node, ref, notes) {
  const wanted = ref.get();
  if (!wanted || wanted === NONE) return null;
  const answer = await resolveLora(api, wanted, ref.hashes);
  if (answer?.found && answer.how !== "exact") {
    ref.set(answer.found);
    notes.info.push(matchText(answer));
  } else if (!answer?.found && answer?.error && ref.enabled !== false) {
    notes.warn.push(`"${wanted}": ${answer.error}`); // said by the node's box, not here
  }
  return { wanted, found: answer?.found ?? null, listed: answer?.listed !== false };
}

/** The node's recorded LoRA entries after its names were looked up: entries of a name found here follow it to the
 * local name (dropped when the frontend's own LoRA list lacks it: the pack's demo LoRAs, which it would flag), entries
 * of a name that is nowhere move to properties.loradeck_missing; other folders' entries are left alone. */
function sortRecorded(node, outcomes) {
  const entries = recordedEntries(node);
  if (!entries.length && !node.properties?.[MISSING]) return;
  const kept = [], missing = [];
  for (const entry of entries) {
    const outcome = outcomes.find((o) => o.wanted === entry.name);
    if (outcome && !outcome.found) missing.push(entry);
    else if (!outcome || outcome.listed) kept.push(outcome ? { ...entry, name: outcome.found } : entry);
  }
  const others = Array.isArray(node.properties.models)
    ? node.properties.models.filter((m) => (m?.directory ?? DIRECTORY) !== DIRECTORY) : [];
  if (node.properties.models || kept.length) node.properties.models = [...others, ...kept];
  if (missing.length) node.properties[MISSING] = missing;
  else delete node.properties[MISSING];
}

async function fixNode(node, notes) {
  if (node.properties?.models) node.properties.models = repairModels(node.properties.models);
  const looked = await Promise.all(nameRefs(node).map((ref) => lookUp(node, ref, notes).catch((error) => {
    console.warn("LoRA Deck: could not look up", ref.get(), error);
    return null;
  })));
  const outcomes = looked.filter(Boolean);
  if (node.properties) sortRecorded(node, outcomes);
  const gone = outcomes.filter((o) => !o.found).map((o) => o.wanted);
  if (gone.length && !ROWS_TYPES.has(node.type)) unresolved.set(String(node.id), new Set(gone));
}

/** Point the LoRA names of every LoRA Deck node in `graphData` at this server's files; returns the notes. */
export async function fixGraph(graphData) {
  const notes = { info: [], warn: [] };
  unresolved.clear();
  const nodes = allNodes(graphData).filter((node) => node.type in NAME_SLOTS || ROWS_TYPES.has(node.type));
  await Promise.all(nodes.map((node) => fixNode(node, notes)));
  return notes;
}

/** A name widget whose value is nowhere here keeps that value among its own choices (a copy of the list: the
 * other nodes' lists are untouched), so the frontend does not report it a second time. */
export function keepOwnValue(node, names = unresolved.get(String(node?.id))) {
  for (const widget of node?.widgets ?? []) {
    const values = widget?.options?.values;
    if (!NAME_WIDGET.test(widget.name) || !names?.has(widget.value) || !Array.isArray(values)) continue;
    if (!values.includes(widget.value)) widget.options.values = [widget.value, ...values];
  }
}

app.registerExtension({
  name: "loradeck.SharedNames",
  // Awaited by the frontend before it configures the graph and looks for missing models (1.35.9 and 1.58.1).
  async beforeConfigureGraph(graphData) {
    const notes = await fixGraph(graphData);
    if (notes.info.length) toast("info", notes.info.join("\n"));
  },
  loadedGraphNode(node) {
    if (node?.type in NAME_SLOTS) keepOwnValue(node);
  },
});
