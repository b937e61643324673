// LoRA Deck: the sidebar panel's DOM — one card per live pipeline with the stack of each branch that ran on it,
// recent activity, and the loading / empty / error states. Pure: loading this module does nothing.
import { adapterView, labelsOf } from "./adapter_view.js";
import { badge, el, ellipsis } from "./dom.js";

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

/** Who applied a snapshot: the node's title, else its id, else the Python API. */
export function sourceText(snapshot) {
  const title = typeof snapshot.source_title === "string" ? snapshot.source_title : "";
  const source = typeof snapshot.source === "string" ? snapshot.source : "";
  if (title) return source ? `${title} (#${source})` : title;
  return source ? `node #${source}` : "Python API";
}

function branchView(snapshot, isCurrent, loadPreview) {
  const source = sourceText(snapshot); // wraps rather than being cut: it says which node this branch is
  const head = el("div", { cls: "loradeck-branch-head" }, [el("span", { cls: "loradeck-source", text: source,
    title: source }),
    isCurrent ? badge("in the model now", "now") : null,
    el("span", { cls: "loradeck-muted", text: `${countText(snapshot)} · ${formatTime(snapshot.applied_at)}` })]);
  const body = snapshot.adapters.length
    ? el("ul", { cls: "loradeck-adapters" }, snapshot.adapters.map((adapter) => adapterView(adapter, loadPreview,
      labelsOf(snapshot.labels))))
    : el("div", { cls: "loradeck-empty-line", text: "No adapters: generates with the base model." });
  const cut = snapshot.adapters_truncated
    ? el("div", { cls: "loradeck-warn", text: "List cut to fit the panel." }) : null;
  return el("div", { cls: "loradeck-branch", attrs: { "data-source": snapshot.source ?? "",
    "data-current": String(isCurrent) } }, [head, body, cut]);
}

/** One pipeline card; `entry` is the store's record of it (see panel_store.js), not a payload object. */
function pipelineView(entry, store, actions) {
  const facts = [entry.family, entry.dtype, entry.device].filter(Boolean).join(" · ");
  const busy = store.releasing.has(entry.pipeline_id);
  const release = el("button", { cls: "loradeck-button loradeck-release", text: busy ? "Releasing…" : "Release",
    title: "Drop this pipeline from the server's memory; the next run loads it again", attrs: { type: "button" } });
  if (busy) release.setAttribute("disabled", "");
  release.addEventListener("click", () => actions.release(entry.pipeline_id));
  const head = el("div", { cls: "loradeck-pipeline-head" }, [ellipsis(entry.label, "loradeck-label"), release]);
  const meta = el("div", { cls: "loradeck-line loradeck-muted",
    text: `${facts} · ${entry.pipeline_id} · applied ${formatTime(entry.applied_at)}` });
  const branches = [...entry.branches.values()].reverse(); // the store keeps them oldest first: newest first here
  const body = branches.length
    ? branches.map((snapshot) => branchView(snapshot, (snapshot.source ?? "") === entry.current, actions.preview))
    : [el("div", { cls: "loradeck-empty-line", text: "Loaded; no stack applied yet." })];
  const cut = entry.cut ? el("div", { cls: "loradeck-warn", text: "Older branches are not shown." }) : null;
  return el("section", { cls: "loradeck-pipeline", attrs: { "data-label": entry.label,
    "data-pipeline": entry.pipeline_id } }, [head, meta, ...body, cut]);
}

function recentView(store) {
  if (!store.recent.length) return null;
  const items = store.recent.map((snapshot) => el("li", { cls: "loradeck-recent-item" }, [
    el("span", { cls: "loradeck-muted", text: formatTime(snapshot.applied_at) }),
    ellipsis(`${snapshot.label} · ${sourceText(snapshot)}`), el("span", { cls: "loradeck-muted", text: countText(snapshot) })]));
  const fold = el("details", { cls: "loradeck-recent" }, [
    el("summary", { text: `Recent activity (${store.recent.length})` }), el("ul", {}, items)]);
  fold.open = store.recentOpen;
  fold.addEventListener("toggle", () => store.setRecentOpen(fold.open));
  return fold;
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

/** Redraw `root` from the store. `actions`: {refresh(), release(pipelineId), preview(loraName) -> Promise<url|null>}. */
export function renderPanel(root, store, actions) {
  const refresh = el("button", { cls: "loradeck-button loradeck-refresh", text: "Refresh", title: "Ask the server again",
    attrs: { type: "button" } });
  refresh.addEventListener("click", () => actions.refresh());
  const pipelines = [...store.pipelines.values()].sort(newestFirst);
  const keep = root.scrollTop;
  const parts = [
    el("header", { cls: "loradeck-header" }, [el("h3", { text: "LoRA Deck" }), refresh]),
    statusView(store),
    memoryView(store),
    ...(pipelines.length ? pipelines.map((entry) => pipelineView(entry, store, actions)) : [emptyView(store)]),
    recentView(store),
  ];
  root.replaceChildren(...parts.filter(Boolean));
  root.scrollTop = keep; // live updates must not throw the reader back to the top
}
