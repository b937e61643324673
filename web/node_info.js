// LoRA Deck: on Load LoRA / Stack LoRAs / LoRA List / Load LoRA Pair, a small DOM box showing each chosen file's
// preview, title and trigger words (click to copy), then — after a run — the match report; and the files' hashes
// recorded in the node's properties.models. The box fills in when a workflow opens, when a file is picked, when the node runs and
// when ComfyUI reuses its cached result (then no "executed" message comes, so the box asks the server itself).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { fetchPreview, loraInfo } from "./api_client.js";
import { el, wordChip } from "./dom.js";
import { parseRows, ROWS_TYPES } from "./lora_rows.js";
import { LOADER_TYPES, mergeModels, modelEntries, recordedHashes } from "./model_records.js";
import { ensureStyles } from "./styles.js";

const INFO_TYPES = new Set([...LOADER_TYPES, "SaveLoRA|LoRADeck"]); // nodes whose ui carries loradeck_info
const WIDGET = "loradeck_info";
const NAME_WIDGET = /^lora_name(_\d+|_high|_low)?$/;
const MAX_LINES = 40;
const MAX_HEIGHT = 320;

function infoWidget(node) {
  const existing = node.widgets?.find((w) => w.name === WIDGET);
  if (existing) return existing;
  ensureStyles();
  const box = el("div", { cls: "loradeck-node-info", attrs: { "data-testid": "loradeck-node-info" } });
  const widget = node.addDOMWidget(WIDGET, "loradeck-info", box, {
    serialize: false, // never part of widgets_values or the queued prompt: widget order stays frozen
    hideOnZoom: false,
    getMinHeight: () => Math.min(MAX_HEIGHT, box.scrollHeight + 6),
    getMaxHeight: () => MAX_HEIGHT,
  });
  widget.serialize = false;
  return widget;
}

/** Grow the node so the box shows all of its text: the classic renderer never resizes for a DOM widget. */
function fit(node) {
  const wanted = node.computeSize?.();
  if (Array.isArray(wanted) && typeof node.setSize === "function" && wanted[1] > node.size[1]) {
    node.setSize([Math.max(node.size[0], wanted[0]), wanted[1]]);
  }
  node.setDirtyCanvas?.(true, true);
}

/** The chosen LoRA names of a loader node (LoRA List: its enabled rows). */
export function chosenNames(node) {
  if (ROWS_TYPES.has(node.comfyClass) || ROWS_TYPES.has(node.type)) {
    const rows = parseRows(node.widgets?.find((w) => w.name === "loras")?.value);
    return rows.filter((r) => r.enabled && r.lora_name).map((r) => r.lora_name);
  }
  return (node.widgets ?? []).filter((w) => NAME_WIDGET.test(w.name) && typeof w.value === "string"
    && w.value && w.value !== "None").map((w) => w.value);
}

/** One file: preview (when it has one), title, trigger words as copy buttons. */
export function loraCard(lora) {
  const words = Array.isArray(lora?.trigger_words) ? lora.trigger_words.map(String).filter(Boolean).slice(0, 20) : [];
  const img = el("img", { cls: "loradeck-node-preview", attrs: { alt: "", hidden: "" } });
  if (lora?.preview && typeof lora.found === "string") {
    fetchPreview(api, lora.found).then((url) => {
      if (!url) return;
      img.src = url;
      img.removeAttribute("hidden");
      img.addEventListener("load", () => img.closest(".loradeck-node-info")?.dispatchEvent(new Event("loradeck-grew")));
    }).catch(() => {});
  }
  const heading = lora?.title || String(lora?.found ?? "").split("/").pop();
  const title = heading ? el("div", { cls: "loradeck-card-title", text: heading, title: lora?.found ?? "" }) : null;
  const chips = words.length ? el("div", { cls: "loradeck-words" }, words.map((w) => wordChip(w, words))) : null;
  return el("div", { cls: "loradeck-card", attrs: { "data-lora": lora?.found ?? "" } }, [img, el("div", {}, [title, chips])]);
}

/** Show `cards` (per file) and `lines` (strings from the node's ui output) on the node, as text. */
export function showInfo(node, lines = [], cards = []) {
  if (typeof node.addDOMWidget !== "function") return;
  const text = Array.isArray(lines) ? lines.slice(0, MAX_LINES) : [];
  if (!text.length && !cards.length) return;
  const widget = infoWidget(node);
  widget.element.replaceChildren(...cards.map(loraCard), ...text.map((line) => el("div", { text: line })));
  widget.element.addEventListener("loradeck-grew", () => fit(node), { once: true });
  fit(node);
}

/** Keep the hashes of the node's LoRA files with the node (saved in the workflow). */
export function recordModels(node, models) {
  const entries = modelEntries(models);
  if (!entries.length) return;
  node.properties = node.properties ?? {};
  node.properties.models = mergeModels(node.properties.models, entries);
  node.onLoraDeckHashes?.(models); // LoRA List also keeps each row's hash in the row
}

/** Without a run (workflow opened, file picked, cached result): ask the server about each chosen file. */
export async function describeChosen(node) {
  const names = chosenNames(node);
  const infos = await Promise.all(names.map((name) => loraInfo(api, name, recordedHashes(node, name)).catch(() => null)));
  const found = infos.filter((info) => info?.found);
  recordModels(node, found.map((info) => ({ name: info.name, sha256: info.sha256, listed: info.listed })));
  showInfo(node, infos.filter((info) => info && !info.found).map((info) => `${info.name}: ${info.error}`), found);
}

function watchNames(node) {
  for (const widget of node.widgets ?? []) {
    if (!NAME_WIDGET.test(widget.name) && widget.name !== "loras") continue;
    const original = widget.callback;
    widget.callback = function () {
      const result = original?.apply(this, arguments);
      describeChosen(node);
      return result;
    };
  }
}

api.addEventListener("execution_cached", ({ detail }) => {
  for (const id of Array.isArray(detail?.nodes) ? detail.nodes : []) {
    const node = app.graph?.getNodeById?.(id);
    if (node && LOADER_TYPES.has(node.comfyClass ?? node.type)) describeChosen(node);
  }
});

app.registerExtension({
  name: "loradeck.NodeInfo",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!INFO_TYPES.has(nodeData?.name)) return;
    const original = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      original?.apply(this, arguments);
      const cards = Array.isArray(message?.loradeck_loras) ? message.loradeck_loras.map((lora) => ({ ...lora,
        found: lora?.name })) : [];
      showInfo(this, message?.loradeck_info, cards);
      recordModels(this, message?.loradeck_models);
    };
    if (!LOADER_TYPES.has(nodeData.name)) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = created?.apply(this, arguments);
      watchNames(this);
      return result;
    };
  },
  loadedGraphNode(node) {
    if (LOADER_TYPES.has(node?.comfyClass ?? node?.type)) describeChosen(node);
  },
});
