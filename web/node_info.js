// LoRA Deck: after Load LoRA / Stack LoRAs (and Save LoRA Stack) run, show their report — match, base model,
// trigger words — in a small DOM widget on the node, and record the files' hashes in the node's properties.models.
import { app } from "../../scripts/app.js";
import { el } from "./dom.js";
import { LOADER_TYPES, mergeModels, modelEntries } from "./model_records.js";
import { ensureStyles } from "./styles.js";

const INFO_TYPES = new Set([...LOADER_TYPES, "SaveLoRA|LoRADeck"]); // nodes whose ui carries loradeck_info
const WIDGET = "loradeck_info";
const MAX_LINES = 40;

function infoWidget(node) {
  const existing = node.widgets?.find((w) => w.name === WIDGET);
  if (existing) return existing;
  ensureStyles();
  const box = el("div", { cls: "loradeck-node-info", attrs: { "data-testid": "loradeck-node-info" } });
  const widget = node.addDOMWidget(WIDGET, "loradeck-info", box, {
    serialize: false, // never part of widgets_values or the queued prompt: widget order stays frozen
    hideOnZoom: false,
    getMinHeight: () => Math.min(140, 8 + 15 * box.childElementCount),
  });
  widget.serialize = false;
  return widget;
}

/** Show `lines` (strings from the node's ui output) on the node, as text. */
export function showInfo(node, lines) {
  if (!Array.isArray(lines) || !lines.length || typeof node.addDOMWidget !== "function") return;
  const widget = infoWidget(node);
  widget.element.replaceChildren(...lines.slice(0, MAX_LINES).map((line) => el("div", { text: line })));
  node.setDirtyCanvas?.(true, true);
}

/** Keep the hashes of the node's LoRA files with the node (saved in the workflow). */
export function recordModels(node, models) {
  const entries = modelEntries(models);
  if (!entries.length) return;
  node.properties = node.properties ?? {};
  node.properties.models = mergeModels(node.properties.models, entries);
}

app.registerExtension({
  name: "loradeck.NodeInfo",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!INFO_TYPES.has(nodeData?.name)) return;
    const original = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      original?.apply(this, arguments);
      showInfo(this, message?.loradeck_info);
      recordModels(this, message?.loradeck_models);
    };
  },
});
