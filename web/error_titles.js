// LoRA Deck: what the user reads names LoRA Deck's nodes by their display names ("Load LoRA (LoRA Deck)"), never by
// their namespaced IDs ("LoadLoRA|LoRADeck"), wherever the frontend takes that name from what the server sends:
// - run-time errors: frontend 1.35.9 titles its error dialog with the execution_error message's node_type (1.58.1
//   with the node's own title); both put it in their error report's "Node Type". This listener is registered when
//   the module loads, before the app's own handler (extensions load first), and changes only that display field;
// - the same error reopened from the queue ("Report error" on a failed job): both frontends take it from
//   api.getHistory (1.35.9: each item's status.messages; 1.58.1: each job's execution_error), wrapped here alike;
// - the error report's Logs section is api.getLogs(): ComfyUI logs a refused prompt's nodes by class_type
//   ("* LoadLoRA|LoRADeck 2:", execution.py), so the wrapped getLogs gives that text with display names. The
//   report's "Attached Workflow" keeps the IDs: it is the graph as saved (node "type" is the ID), and a renamed
//   copy would not load;
// - the bottom panel's Logs terminal shows the same server log: what it loads when it opens (api.getRawLogs) and
//   what it is sent afterwards (the "logs" messages) have the IDs replaced likewise, in the log entries' text only;
// - queue-time errors: both frontends head each node's validation errors with the class_type of POST /prompt's
//   node_errors (1.35.9: "LoadLoRA|LoRADeck:\n- Custom validation failed…"); no event carries them, so
//   api.queuePrompt is wrapped once to put the display name into that field of the error it throws. A reason the
//   node's own box already says (a missing LoRA file) is not repeated there: its details point to the box instead;
// - the browser tab: "[50%] Generate|LoRADeck" is the frontend's title for the running node (its type), so a
//   changed title naming one of our IDs is given the display name instead.
// The IDs themselves never change: workflows store them.
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";

const SUFFIX = "|LoRADeck";
const names = new Map(); // node ID -> display name, from the node definitions
const ID = /[A-Za-z0-9_]+\|LoRADeck/g;

/** The display name for `nodeType`, or null when it is not a LoRA Deck node (or unknown). */
export function displayName(nodeType) {
  return typeof nodeType === "string" && nodeType.endsWith(SUFFIX) ? names.get(nodeType) ?? null : null;
}

/** `text` with every LoRA Deck node ID in it replaced by its display name. */
export function withDisplayNames(text) {
  return typeof text === "string" ? text.replace(ID, (id) => displayName(id) ?? id) : text;
}

/** The lines of the info box of graph node `id` (node_info.js's widget), or [] when it has none. */
function boxLines(id) {
  const node = app.graph?.getNodeById?.(id);
  const body = node?.widgets?.find((w) => w.name === "loradeck_info")?.body;
  return body ? [...body.children].map((line) => line.textContent ?? "").filter(Boolean) : [];
}

/** Whether every line of `details` (a validation reason; LoRA List's has one line per row) says what one of
 * `lines` already says: the box's "<file>: <reason>" and the server's "lora_name - lora_name: LoRA file '<file>':
 * <reason>" share the file and the reason. */
export function saidIn(lines, details) {
  if (typeof details !== "string" || !details) return false;
  return details.split("\n").every((part) => lines.some((line) => {
    const cut = line.indexOf(": ");
    const [file, reason] = cut > 0 ? [line.slice(0, cut), line.slice(cut + 2)] : ["", line];
    return reason.length >= 20 && part.includes(reason) && part.includes(file);
  }));
}

/** node_errors of a /prompt answer ({id: {class_type, errors}}) with display names as class_type, in place; with
 * `lines(id)` (a node's box lines), a reason the box already says gets details that point to the box instead. */
export function renameNodeErrors(nodeErrors, lines = () => []) {
  for (const [id, entry] of nodeErrors && typeof nodeErrors === "object" ? Object.entries(nodeErrors) : []) {
    const name = displayName(entry?.class_type);
    if (!name) continue;
    entry.class_type = name;
    const box = lines(id);
    for (const reason of Array.isArray(entry.errors) ? entry.errors : []) {
      if (!saidIn(box, reason?.details)) continue;
      const input = reason.extra_info?.input_name ?? String(reason.details).split(" - ")[0];
      reason.details = `${input}: see this node's box`;
    }
  }
  return nodeErrors;
}

/** An execution_error (or execution_interrupted) message with the display name as node_type, in place. */
export function renameExecutionError(detail) {
  const name = displayName(detail?.node_type);
  if (name) detail.node_type = name;
  return detail;
}

/** api.getHistory's answer with display names in its errors, in place: 1.35.9 {History: [{status: {messages}}]},
 * 1.58.1 [{execution_error}]. */
export function renameHistoryErrors(history) {
  const items = Array.isArray(history) ? history : Array.isArray(history?.History) ? history.History : [];
  for (const item of items) {
    if (item?.execution_error) renameExecutionError(item.execution_error);
    for (const message of Array.isArray(item?.status?.messages) ? item.status.messages : []) {
      if (Array.isArray(message) && String(message[0]).startsWith("execution_")) renameExecutionError(message[1]);
    }
  }
  return history;
}

/** A raw log answer or "logs" message ({entries: [{t, m}]}) with display names in each entry's text, in place. */
export function renameLogEntries(logs) {
  for (const entry of Array.isArray(logs?.entries) ? logs.entries : []) {
    if (typeof entry?.m === "string") entry.m = withDisplayNames(entry.m);
  }
  return logs;
}

api.addEventListener("execution_error", ({ detail }) => renameExecutionError(detail));
api.addEventListener("logs", ({ detail }) => renameLogEntries(detail));

function wrapQueuePrompt() {
  const original = api.queuePrompt;
  if (typeof original !== "function" || original.loradeckWrapped) return;
  const wrapped = async function (...args) {
    try {
      const queued = await original.apply(this, args);
      renameNodeErrors(queued?.node_errors, boxLines);
      return queued;
    } catch (error) {
      renameNodeErrors(error?.response?.node_errors, boxLines);
      throw error;
    }
  };
  wrapped.loradeckWrapped = true;
  api.queuePrompt = wrapped;
}

/** Wrap api[method] once so that what it resolves to passes through `change` (in place or returned). */
function wrapAnswer(method, change) {
  const original = api[method];
  if (typeof original !== "function" || original.loradeckWrapped) return;
  const wrapped = async function (...args) {
    return change(await original.apply(this, args));
  };
  wrapped.loradeckWrapped = true;
  api[method] = wrapped;
}

function watchTabTitle() {
  const fix = () => {
    const fixed = withDisplayNames(document.title);
    if (fixed !== document.title) document.title = fixed;
  };
  let title = document.querySelector("title");
  if (!title) {
    title = document.createElement("title");
    document.head.append(title);
  }
  new MutationObserver(fix).observe(title, { childList: true, characterData: true, subtree: true });
  fix();
}

wrapQueuePrompt();
wrapAnswer("getHistory", renameHistoryErrors);
wrapAnswer("getLogs", withDisplayNames);
wrapAnswer("getRawLogs", renameLogEntries);

app.registerExtension({
  name: "loradeck.ErrorTitles",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (typeof nodeData?.name === "string" && nodeData.name.endsWith(SUFFIX) && nodeData.display_name) {
      names.set(nodeData.name, String(nodeData.display_name));
    }
  },
  setup() {
    if (typeof MutationObserver === "function" && typeof document !== "undefined") watchTabTitle();
  },
});
