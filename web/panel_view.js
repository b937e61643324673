// LoRA Deck: the sidebar panel's DOM — one card per live pipeline with its adapters, recent activity,
// and the loading / empty / error states. Pure: loading this module does nothing.
import { adapterView } from "./adapter_view.js";
import { el, ellipsis } from "./dom.js";

export function formatTime(seconds) {
  const when = new Date(Number(seconds) * 1000);
  if (!Number.isFinite(when.getTime()) || Number(seconds) <= 0) return "never";
  const today = when.toDateString() === new Date().toDateString();
  return today ? when.toLocaleTimeString() : when.toLocaleString();
}

function countText(snapshot) {
  const shown = snapshot.adapters.length;
  const total = Number.isFinite(Number(snapshot.adapters_total)) ? Number(snapshot.adapters_total) : shown;
  const noun = total === 1 ? "adapter" : "adapters";
  return shown < total ? `showing ${shown} of ${total} ${noun}` : `${total} ${noun}`;
}

function pipelineView(snapshot) {
  const facts = [snapshot.family, snapshot.dtype, snapshot.device].filter(Boolean).join(" · ");
  const head = el("div", { cls: "loradeck-pipeline-head" }, [ellipsis(snapshot.label, "loradeck-label"),
    el("span", { cls: "loradeck-muted", text: countText(snapshot) })]);
  const applied = `${facts} · applied ${formatTime(snapshot.applied_at)}`;
  const meta = el("div", { cls: "loradeck-line loradeck-muted", text: applied });
  const body = snapshot.adapters.length
    ? el("ul", { cls: "loradeck-adapters" }, snapshot.adapters.map(adapterView))
    : el("div", { cls: "loradeck-empty-line", text: "No adapters: generates with the base model." });
  const cut = snapshot.adapters_truncated
    ? el("div", { cls: "loradeck-warn", text: "List cut to fit the panel." }) : null;
  return el("section", { cls: "loradeck-pipeline", attrs: { "data-label": snapshot.label } }, [head, meta, body, cut]);
}

function recentView(recent) {
  if (!recent.length) return null;
  const items = recent.map((s) => el("li", { cls: "loradeck-recent-item" }, [
    el("span", { cls: "loradeck-muted", text: formatTime(s.applied_at) }), ellipsis(s.label),
    el("span", { cls: "loradeck-muted", text: countText(s) })]));
  return el("details", { cls: "loradeck-recent" }, [el("summary", { text: `Recent activity (${recent.length})` }),
    el("ul", {}, items)]);
}

function statusView(store) {
  if (store.error) return el("div", { cls: "loradeck-error", attrs: { role: "alert" }, text: store.error });
  if (store.loading && !store.loaded) return el("div", { cls: "loradeck-muted", text: "Loading…" });
  const cut = "Some lists were cut to keep the answer small.";
  if (store.truncated) return el("div", { cls: "loradeck-warn", text: cut });
  return null;
}

function emptyView(store) {
  if (!store.loaded) return null;
  return el("div", { cls: "loradeck-empty" }, [
    el("div", { text: "No pipeline loaded yet." }),
    el("div", { cls: "loradeck-muted", text: "Queue a workflow with LoRA Deck nodes; this panel fills in live." })]);
}

export function formatBytes(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Math.max(0, Number(bytes) || 0), unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value < 10 && unit ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

function memoryView(store) {
  if (!store.memory) return null;
  const text = `LoRA store: ${formatBytes(store.memory.held)} of ${formatBytes(store.memory.budget)}`;
  return el("div", { cls: "loradeck-line loradeck-muted loradeck-store", text,
    title: "Files and converted adapters kept in memory (LORADECK_STORE_MB sets the budget)" });
}

/** The pipeline applied last comes first: it is the one the user just ran. */
function newestFirst(a, b) {
  return (Number(b.applied_at) || 0) - (Number(a.applied_at) || 0) || a.label.localeCompare(b.label);
}

/** Redraw `root` from the store; `onRefresh` is called by the refresh button. */
export function renderPanel(root, store, onRefresh) {
  const refresh = el("button", { cls: "loradeck-refresh", text: "Refresh", title: "Ask the server again" });
  refresh.addEventListener("click", () => onRefresh());
  const pipelines = [...store.pipelines.values()].sort(newestFirst);
  const parts = [
    el("header", { cls: "loradeck-header" }, [el("h3", { text: "LoRA Deck" }), refresh]),
    statusView(store),
    memoryView(store),
    ...(pipelines.length ? pipelines.map(pipelineView) : [emptyView(store)]),
    recentView(store.recent),
  ];
  root.replaceChildren(...parts.filter(Boolean));
}
