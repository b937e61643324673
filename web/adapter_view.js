// LoRA Deck: one adapter of a pipeline snapshot as DOM — name, state, preview, file, strengths, block weights,
// match report, base model, title, trigger words (click to copy).
// Reads every field defensively: snapshots come from the server, metadata from arbitrary LoRA files.
// Field names read here are checked against the Python payload by tests/test_panel_contract.py.
// Pure: loading this module does nothing.
import { badge, el, ellipsis, wordChip } from "./dom.js";

const MAX_WORDS = 20;
const STATES = { active: "active", disabled: "off", fused: "fused", mixed: "warn" }; // state -> badge kind

export function formatNumber(value) {
  const number = Number(value);
  return Number.isFinite(number) ? String(Math.round(number * 1000) / 1000) : "?";
}

/** A component as people call it: "transformer_2 (low noise)" where the snapshot labels it (Wan 2.2's experts). */
export function componentName(component, labels = {}) {
  const label = labels && typeof labels === "object" ? labels[component] : undefined;
  return typeof label === "string" && label ? `${component} (${label})` : String(component);
}

/** The snapshot's [[component, label], ...] as an object (display labels of some components). */
export function labelsOf(pairs) {
  return Object.fromEntries((Array.isArray(pairs) ? pairs : []).filter((p) => Array.isArray(p) && p.length === 2)
    .map(([component, label]) => [String(component), String(label)]));
}

/** [["unet", 0.8], ["text_encoder", 0.5]] -> "unet 0.8 · text_encoder 0.5" */
export function formatWeights(weights, labels = {}) {
  if (!Array.isArray(weights) || weights.length === 0) return "no layers matched";
  return weights.map((pair) => (Array.isArray(pair) ? `${componentName(pair[0], labels)} ${formatNumber(pair[1])}`
    : "?")).join(" · ");
}

/** [["unet", 0, 0.8]] -> "unet 0–0.8" (one number when every layer has the same strength) */
export function formatSpread(spread, labels = {}) {
  if (!Array.isArray(spread)) return "";
  return spread.filter(Array.isArray).map(([component, low, high]) => {
    const name = componentName(component, labels);
    return formatNumber(low) === formatNumber(high) ? `${name} ${formatNumber(low)}`
      : `${name} ${formatNumber(low)}–${formatNumber(high)}`;
  }).join(" · ");
}

export function baseName(path) {
  return String(path ?? "").split(/[\\/]/).pop();
}

function metadataOf(adapter) {
  const meta = adapter?.report?.metadata;
  return meta !== null && typeof meta === "object" ? meta : {};
}

/** Trigger words from the load report's metadata: a list or one comma-separated string. */
export function triggerWords(adapter) {
  const meta = metadataOf(adapter);
  const words = meta.trigger_words;
  const list = Array.isArray(words) ? words : typeof words === "string" ? words.split(",") : [];
  return list.map((w) => String(w).trim()).filter(Boolean).slice(0, MAX_WORDS);
}

/** The base model the file was made for: the metadata's human name first, then the report's raw value. */
export function baseModel(adapter) {
  const meta = metadataOf(adapter);
  const value = meta.base_model || adapter?.report?.base_model || "";
  return String(value === "unknown" ? "" : value);
}

/** The one state word the layers report: active, disabled, fused (or mixed, which LoRA Deck never leaves). */
export function stateOf(adapter) {
  const state = String(adapter?.state ?? "");
  if (state in STATES) return state;
  return adapter?.fused ? "fused" : adapter?.enabled === false ? "disabled" : "active";
}

function matchLine(report) {
  const matched = Number(report?.matched);
  const total = Number(report?.total);
  if (!Number.isFinite(matched) || !Number.isFinite(total)) return null;
  const format = report.format ? `${report.format} · ` : "";
  const warnings = Array.isArray(report.warnings) ? report.warnings.map(String) : [];
  const kind = matched < total || warnings.length ? "loradeck-warn" : "";
  const text = `${format}matched ${matched}/${total} modules${warnings.length ? " (partial)" : ""}`;
  return el("div", { cls: `loradeck-line ${kind}`.trim(), text, title: warnings.join("; ") || null });
}

function keyed(key, value, title = null, cls = "", wrap = false) {
  if (!value) return null;
  const shown = wrap ? el("span", { cls: "loradeck-wrap", text: value, title }) : ellipsis(value, "", title);
  return el("div", { cls: `loradeck-line ${cls}`.trim() }, [el("span", { cls: "loradeck-key", text: `${key} ` }),
    shown]);
}

function strengthLines(adapter, labels) {
  const state = stateOf(adapter);
  const set = formatWeights(adapter?.weights, labels);
  const weights = el("div", { cls: "loradeck-line loradeck-weights" }, [
    el("span", { cls: "loradeck-key", text: "strength " }),
    el("span", { cls: "loradeck-wrap", text: state === "disabled" ? `${set} (off)` : set })]);
  const blocks = typeof adapter?.blocks === "string" ? adapter.blocks : "";
  const spread = formatSpread(adapter?.layer_strengths, labels);
  const differs = spread && spread !== set; // block weights (or a fuse scale) spread the strength over layers
  return [weights, keyed("blocks", blocks, null, "loradeck-blocks", true),
    blocks || differs ? keyed("layers", spread, "strength per layer, lowest–highest, as the model has it now",
      "loradeck-layers", true) : null];
}

/** A strength schedule over the steps: [["unet", "ramp(1.2, 0.2)"]] -> "unet ramp(1.2, 0.2)". */
export function formatSchedule(schedule, labels = {}) {
  if (!Array.isArray(schedule) || schedule.length === 0) return "";
  return schedule.map((pair) => (Array.isArray(pair) ? `${componentName(pair[0], labels)} ${pair[1]}` : "?"))
    .join(" · ");
}

/** An adapter's other files (a Wan 2.2 pair's low-noise file): one line each, "transformer_2 (low noise) file". */
function partLines(adapter, labels) {
  const parts = Array.isArray(adapter?.part_files) ? adapter.part_files.filter(Array.isArray) : [];
  return parts.map(([component, path]) => keyed(componentName(component, labels), baseName(path), String(path ?? ""),
    "loradeck-file"));
}

function wordsLine(adapter) {
  const words = triggerWords(adapter);
  if (!words.length) return null;
  return el("div", { cls: "loradeck-words" }, [el("span", { cls: "loradeck-key", text: "trigger " }),
    ...words.map((w) => wordChip(w, words))]);
}

function previewBox(adapter, loadPreview) {
  const name = adapter?.lora_name;
  if (typeof name !== "string" || !name || typeof loadPreview !== "function") return null;
  const img = el("img", { cls: "loradeck-preview", attrs: { alt: "", loading: "lazy", hidden: "" } });
  loadPreview(name).then((url) => {
    if (!url) return;
    img.src = url;
    img.removeAttribute("hidden");
  }).catch(() => {});
  return img;
}

/** The DOM for one adapter of a snapshot; `loadPreview(name)` resolves to a picture URL or null; `labels`: the
 * snapshot's display labels of components (labelsOf). */
export function adapterView(adapter, loadPreview = null, labels = {}) {
  const state = stateOf(adapter);
  const head = el("div", { cls: "loradeck-adapter-head" }, [ellipsis(adapter?.name ?? "?", "loradeck-name"),
    badge(state, STATES[state])]);
  const file = el("div", { cls: "loradeck-line loradeck-file" }, [ellipsis(baseName(adapter?.file), "",
    adapter?.file ?? "")]);
  const meta = metadataOf(adapter);
  const body = el("div", { cls: "loradeck-adapter-body" }, [
    head, file, ...partLines(adapter, labels), ...strengthLines(adapter, labels),
    keyed("over steps", formatSchedule(adapter?.schedule, labels), null, "", true),
    matchLine(adapter?.report),
    keyed("base", baseModel(adapter), meta.base_model_source || null),
    keyed("title", meta.title), wordsLine(adapter),
  ]);
  return el("li", { cls: "loradeck-adapter", attrs: { "data-adapter": adapter?.name ?? "", "data-state": state } }, [
    previewBox(adapter, loadPreview), body]);
}
