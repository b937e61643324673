// LoRA Deck: one adapter of a pipeline snapshot as DOM (name, file, weights, state, match, trigger words).
// Reads every field defensively: snapshots come from the server, metadata from arbitrary LoRA files.
// Pure: loading this module does nothing.
import { badge, el, ellipsis } from "./dom.js";

const MAX_WORDS = 20;

export function formatNumber(value) {
  const number = Number(value);
  return Number.isFinite(number) ? String(Math.round(number * 1000) / 1000) : "?";
}

/** [["unet", 0.8], ["text_encoder", 0.5]] -> "unet 0.8 · text_encoder 0.5" */
export function formatWeights(weights) {
  if (!Array.isArray(weights) || weights.length === 0) return "no layers matched";
  return weights.map((pair) => (Array.isArray(pair) ? `${pair[0]} ${formatNumber(pair[1])}` : "?")).join(" · ");
}

export function baseName(path) {
  return String(path ?? "").split(/[\\/]/).pop();
}

function metadata(adapter) {
  const meta = adapter?.report?.metadata;
  return meta !== null && typeof meta === "object" ? meta : {};
}

/** Trigger words from the load report's metadata: a list or one comma-separated string. */
export function triggerWords(adapter) {
  const words = metadata(adapter).trigger_words;
  const list = Array.isArray(words) ? words : typeof words === "string" ? words.split(",") : [];
  return list.map((w) => String(w).trim()).filter(Boolean).slice(0, MAX_WORDS);
}

/** The base model the file was made for: the metadata's human name first, then the report's raw value. */
export function baseModel(adapter) {
  const value = metadata(adapter).base_model || adapter?.report?.base_model || "";
  return String(value === "unknown" ? "" : value);
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

function blockWeightsLine(adapter) {
  const blocks = adapter?.block_weights;
  const empty = blocks === null || blocks === undefined || (typeof blocks === "object" && !Object.keys(blocks).length);
  if (empty) return null;
  const text = typeof blocks === "string" ? blocks : JSON.stringify(blocks);
  return el("div", { cls: "loradeck-line" }, [el("span", { cls: "loradeck-key", text: "blocks " }),
    ellipsis(text)]);
}

/** A strength schedule over the steps: [["unet", "ramp(1.2, 0.2)"]] -> "unet ramp(1.2, 0.2)". */
export function formatSchedule(schedule) {
  if (!Array.isArray(schedule) || schedule.length === 0) return "";
  return schedule.map((pair) => (Array.isArray(pair) ? `${pair[0]} ${pair[1]}` : "?")).join(" · ");
}

function wordsLine(adapter) {
  const words = triggerWords(adapter);
  if (!words.length) return null;
  return el("div", { cls: "loradeck-words" }, [el("span", { cls: "loradeck-key", text: "trigger " }),
    ...words.map((w) => el("span", { cls: "loradeck-word", text: w, title: w }))]);
}

function keyed(key, value, title = null) {
  if (!value) return null;
  return el("div", { cls: "loradeck-line" }, [el("span", { cls: "loradeck-key", text: `${key} ` }),
    ellipsis(value, "", title)]);
}

/** The DOM for one adapter of a snapshot. */
export function adapterView(adapter) {
  const state = [adapter?.fused ? badge("fused", "fused") : badge("active", "active")];
  if (adapter?.enabled === false) state.push(badge("disabled", "off"));
  const head = el("div", { cls: "loradeck-adapter-head" }, [ellipsis(adapter?.name ?? "?", "loradeck-name"),
    ...state]);
  const file = el("div", { cls: "loradeck-line loradeck-file" }, [ellipsis(baseName(adapter?.file), "",
    adapter?.file ?? "")]);
  return el("li", { cls: "loradeck-adapter", attrs: { "data-adapter": adapter?.name ?? "" } }, [
    head, file,
    el("div", { cls: "loradeck-line loradeck-weights", text: formatWeights(adapter?.weights) }),
    keyed("over steps", formatSchedule(adapter?.schedule)), blockWeightsLine(adapter), matchLine(adapter?.report),
    keyed("base", baseModel(adapter), metadata(adapter).base_model_source || null),
    keyed("title", metadata(adapter).title), wordsLine(adapter),
  ]);
}
