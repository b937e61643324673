// LoRA Deck: when a shared workflow opens, LoRA names that this server does not list are looked up by the
// rules the nodes use (Windows separators, other subfolders, then the hash recorded with the node) and the
// widget is switched to the local name, so the graph queues without a "value not in list" error.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { resolveLora } from "./api_client.js";
import { LOADER_TYPES, recordedHashes } from "./model_records.js";

const NAME_WIDGET = /^lora_name(_\d+)?$/;
const NONE = "None";

/** The node's LoRA-name combo widgets whose value is not one of this server's files. */
export function unknownNames(node) {
  return (node.widgets ?? []).filter((w) => NAME_WIDGET.test(w.name) && typeof w.value === "string"
    && w.value !== NONE && Array.isArray(w.options?.values) && !w.options.values.includes(w.value));
}

function tell(text) {
  const toast = app.extensionManager?.toast;
  if (typeof toast?.add === "function") toast.add({ severity: "info", summary: "LoRA Deck", detail: text, life: 8000 });
  else console.info(`LoRA Deck: ${text}`);
}

async function fixWidget(node, widget) {
  const wanted = widget.value;
  const answer = await resolveLora(api, wanted, recordedHashes(node, wanted));
  if (!answer?.found || !widget.options.values.includes(answer.found) || widget.value !== wanted) return;
  widget.value = answer.found;
  widget.callback?.(answer.found);
  node.setDirtyCanvas?.(true, true);
  const how = answer.how === "hash" ? "same file content (hash)" : `same file, ${answer.how}`;
  tell(`"${wanted}" is "${answer.found}" on this machine (${how}).`);
}

/** Point every unknown LoRA name of `node` at the local file, where one is found. */
export async function fixNames(node) {
  for (const widget of unknownNames(node)) {
    try {
      await fixWidget(node, widget);
    } catch (error) {
      console.warn("LoRA Deck: could not look up", widget.value, error);
    }
  }
}

app.registerExtension({
  name: "loradeck.SharedNames",
  loadedGraphNode(node) {
    if (LOADER_TYPES.has(node?.comfyClass ?? node?.type)) fixNames(node);
  },
});
