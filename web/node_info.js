// LoRA Deck: on Load LoRA / Stack LoRAs / LoRA List / Load LoRA Pair / LoRA Loader, a small DOM box showing each
// chosen file's preview, title and trigger words (click to copy), then — after a run — the match report; and the
// files' hashes recorded in the node's properties.models. The box fills in when a workflow opens, when a file is picked, when the node runs and
// when ComfyUI reuses its cached result (the report of the last run is kept while the same files are chosen).
//
// The box is exactly as tall as its text in both renderers: its content sits in an inner element whose height is
// measured (never the box's own height, which the frontend sets in the classic renderer: measuring that grows the
// node a little on every layout), the widget asks for exactly that height, and the node is resized to fit whenever
// a resize observer sees the measured height change (new text, a picture that loaded, a new width that rewraps).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { fetchPreview, loraInfo } from "./api_client.js";
import { el, wordChip } from "./dom.js";
import { parseRows, ROWS_TYPES } from "./lora_rows.js";
import { LOADER_TYPES, MISSING, mergeModels, modelEntries, recordedHashes, stillMissing } from "./model_records.js";
import { ensureStyles } from "./styles.js";

const INFO_TYPES = new Set([...LOADER_TYPES, "SaveLoRA|LoRADeck"]); // nodes whose ui carries loradeck_info
const WIDGET = "loradeck_info";
const NAME_WIDGET = /^lora_name(_\d+|_high|_low)?$/;
const MAX_LINES = 40;
const PAD = 6; // the box's vertical padding, px

function isListNode(node) {
  return ROWS_TYPES.has(node.comfyClass ?? node.type);
}

/** The node's info widget, made once (when the node is created, so both renderers lay it out from the start). */
export function infoWidget(node) {
  const existing = node.widgets?.find((w) => w.name === WIDGET);
  if (existing || typeof node.addDOMWidget !== "function") return existing ?? null;
  ensureStyles();
  const body = el("div", { cls: "loradeck-node-info-body" });
  const box = el("div", { cls: "loradeck-node-info", attrs: { "data-testid": "loradeck-node-info" } }, [body]);
  const widget = node.addDOMWidget(WIDGET, "loradeck-info", box, {
    serialize: false, // never part of widgets_values or the queued prompt: widget order stays frozen
    hideOnZoom: false,
    hideInPanel: true, // an internal display, not an input: kept out of the frontend's side panel
    getMinHeight: () => slotHeight(widget, widget.contentHeight),
    getMaxHeight: () => slotHeight(widget, widget.contentHeight),
  });
  widget.serialize = false;
  widget.body = body;
  widget.contentHeight = 0;
  if (typeof ResizeObserver === "function") new ResizeObserver(() => refit(node, widget)).observe(body);
  return widget;
}

/** The height the box needs for its content now (0 when empty), or null while it is not laid out (hidden). */
export function contentHeight(widget) {
  const body = widget.body;
  if (!body.childElementCount) return 0;
  if (!body.isConnected || body.offsetParent === null) return null;
  return Math.ceil(body.offsetHeight) + PAD;
}

/** Make `node` as tall as its widgets need (never more) in the classic renderer; Nodes 2.0 grows and shrinks
 * a node to its content by itself (a LiteGraph size there would only add blank space). */
export function fitNode(node) {
  const size = window.LiteGraph?.vueNodesMode ? null : node.computeSize?.();
  if (Array.isArray(size) && typeof node.setSize === "function") node.setSize([node.size[0], size[1]]);
  node.setDirtyCanvas?.(true, true);
}

/** The height a DOM widget asks of the classic renderer for an element `height` px tall: the renderer gives the
 * element the widget's height less its margin above and below (both checked frontends). */
export function slotHeight(widget, height) {
  return height ? height + 2 * (Number.isFinite(widget?.margin) ? widget.margin : 10) : 0;
}

/** The element of a DOM widget keeps `height` px: Nodes 2.0 lays a DOM widget out by its element, and would
 * stretch it (a flex item of its cell) over any room the node has left. */
export function holdHeight(element, height) {
  element.style.height = `${height}px`;
  element.style.flex = "none";
}

/** Give the box the height of its content and the node the height its widgets then need (never more). */
export function refit(node, widget = node.widgets?.find((w) => w.name === WIDGET)) {
  if (!widget?.body) return;
  const wanted = contentHeight(widget);
  if (wanted === null || wanted === widget.contentHeight) return;
  widget.contentHeight = wanted;
  holdHeight(widget.element, wanted);
  fitNode(node);
}

/** The chosen LoRA names of a loader node (LoRA List: its enabled rows), with the hashes recorded for each. */
export function chosen(node) {
  if (isListNode(node)) {
    const rows = parseRows(node.widgets?.find((w) => w.name === "loras")?.value);
    return rows.filter((r) => r.enabled && r.lora_name).map((r) => ({ name: r.lora_name,
      hashes: r.sha256 ? [r.sha256] : [] }));
  }
  return (node.widgets ?? []).filter((w) => NAME_WIDGET.test(w.name) && typeof w.value === "string"
    && w.value && w.value !== "None").map((w) => ({ name: w.value, hashes: recordedHashes(node, w.value) }));
}

export function chosenNames(node) {
  return chosen(node).map((c) => c.name);
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
    }).catch(() => {});
  }
  const heading = lora?.title || String(lora?.found ?? "").split("/").pop();
  const title = heading ? el("div", { cls: "loradeck-card-title", text: heading, title: lora?.found ?? "" }) : null;
  const chips = words.length ? el("div", { cls: "loradeck-words" }, words.map((w) => wordChip(w, words))) : null;
  return el("div", { cls: "loradeck-card", attrs: { "data-lora": lora?.found ?? "" } }, [img, el("div", {}, [title, chips])]);
}

/** Show `cards` (per file) and `lines` (strings from the node's ui output) on the node, as text. */
export function showInfo(node, lines = [], cards = []) {
  const all = Array.isArray(lines) ? lines.map(String) : [];
  const text = all.length > MAX_LINES ? [...all.slice(0, MAX_LINES - 1), `… ${all.length - MAX_LINES + 1} more lines`]
    : all;
  const widget = infoWidget(node);
  if (!widget) return;
  widget.body.replaceChildren(...cards.map(loraCard), ...text.map((line) => el("div", { text: line })));
  // The resize observer refits once the new content is laid out (a measurement here could catch a passing state:
  // a picture not loaded yet, whose final size the observer, having seen it before, would not report again).
  if (typeof ResizeObserver !== "function") refit(node, widget);
}

/** Keep the hashes of the node's LoRA files with the node (saved in the workflow). */
export function recordModels(node, models) {
  const entries = modelEntries(models);
  if (!entries.length) return;
  node.properties = node.properties ?? {};
  node.properties.models = mergeModels(node.properties.models, entries);
  const missing = stillMissing(node, entries.map((e) => e.name));
  if (missing.length) node.properties[MISSING] = missing;
  else delete node.properties[MISSING];
  node.onLoraDeckHashes?.(models); // LoRA List also keeps each row's hash in the row
}

function sameNames(a, b) {
  return a.length === b.length && a.every((name, i) => name === b[i]);
}

/** Without a run (workflow opened, file picked, cached result): ask the server about each chosen file. The match
 * report of the node's last run stays while the same files are chosen. */
export async function describeChosen(node) {
  const picked = chosen(node);
  const infos = await Promise.all(picked.map(({ name, hashes }) => loraInfo(api, name, hashes).catch(() => null)));
  const found = infos.filter((info) => info?.found);
  recordModels(node, found.map((info) => ({ name: info.name, sha256: info.sha256, listed: info.listed })));
  const lastRun = node.loradeckReport;
  const kept = lastRun && sameNames(lastRun.names, picked.map((p) => p.name)) ? lastRun.lines : [];
  const problems = infos.filter((info) => info && !info.found).map((info) => `${info.name}: ${info.error}`);
  showInfo(node, [...problems, ...kept], found);
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
      const lines = Array.isArray(message?.loradeck_info) ? message.loradeck_info.map(String) : [];
      this.loradeckReport = { names: chosenNames(this), lines };
      showInfo(this, lines, cards);
      recordModels(this, message?.loradeck_models);
    };
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = created?.apply(this, arguments);
      infoWidget(this);
      if (LOADER_TYPES.has(nodeData.name)) watchNames(this);
      return result;
    };
  },
  loadedGraphNode(node) {
    if (LOADER_TYPES.has(node?.comfyClass ?? node?.type)) describeChosen(node);
  },
});
