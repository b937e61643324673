// LoRA Deck: what the user reads names LoRA Deck's nodes by their display names ("Load LoRA (LoRA Deck)"), never by
// their namespaced IDs ("LoadLoRA|LoRADeck"), wherever the frontend takes that name from what the server sends:
// - run-time errors: frontend 1.35.9 titles its error dialog with the execution_error message's node_type (1.58.1
//   with the node's own title); this listener is registered when the module loads, before the app's own handler
//   (extensions load first), and changes only that display field of the message;
// - queue-time errors: both frontends head each node's validation errors with the class_type of POST /prompt's
//   node_errors (1.35.9: "LoadLoRA|LoRADeck:\n- Custom validation failed…"); no event carries them, so
//   api.queuePrompt is wrapped once to put the display name into that field of the error it throws;
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

/** node_errors of a /prompt answer ({id: {class_type, errors}}) with display names as class_type, in place. */
export function renameNodeErrors(nodeErrors) {
  for (const entry of nodeErrors && typeof nodeErrors === "object" ? Object.values(nodeErrors) : []) {
    const name = displayName(entry?.class_type);
    if (name) entry.class_type = name;
  }
  return nodeErrors;
}

api.addEventListener("execution_error", ({ detail }) => {
  const name = displayName(detail?.node_type);
  if (name) detail.node_type = name;
});

function wrapQueuePrompt() {
  const original = api.queuePrompt;
  if (typeof original !== "function" || original.loradeckWrapped) return;
  const wrapped = async function (...args) {
    try {
      const queued = await original.apply(this, args);
      renameNodeErrors(queued?.node_errors);
      return queued;
    } catch (error) {
      renameNodeErrors(error?.response?.node_errors);
      throw error;
    }
  };
  wrapped.loradeckWrapped = true;
  api.queuePrompt = wrapped;
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
