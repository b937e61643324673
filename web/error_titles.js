// LoRA Deck: run-time errors of LoRA Deck nodes are titled with the node's display name ("Load LoRA"), not its
// namespaced ID ("LoadLoRA|LoRADeck"). Frontend 1.35.9 titles its error dialog with the execution_error
// message's node_type; this listener is registered when the module loads, before the app's own handler
// (extensions load first), and changes only that display field of the message. 1.58.1 titles errors with the
// node's own title and uses node_type only as a fallback, so it shows the same name.
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";

const SUFFIX = "|LoRADeck";
const names = new Map(); // node ID -> display name, from the node definitions

/** The display name for `nodeType`, or null when it is not a LoRA Deck node (or unknown). */
export function displayName(nodeType) {
  return typeof nodeType === "string" && nodeType.endsWith(SUFFIX) ? names.get(nodeType) ?? null : null;
}

api.addEventListener("execution_error", ({ detail }) => {
  const name = displayName(detail?.node_type);
  if (name) detail.node_type = name;
});

app.registerExtension({
  name: "loradeck.ErrorTitles",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (typeof nodeData?.name === "string" && nodeData.name.endsWith(SUFFIX) && nodeData.display_name) {
      names.set(nodeData.name, String(nodeData.display_name));
    }
  },
});
