// LoRA Deck: the "LoRA Deck" sidebar tab — live pipelines, the stack each graph branch ran with, previews.
// Fills itself from GET /loradeck/snapshot when opened and updates from the "loradeck.snapshot" websocket event.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { fetchPreview, fetchSnapshot, onSnapshot, releasePipeline } from "./api_client.js";
import { el } from "./dom.js";
import { PanelStore } from "./panel_store.js";
import { renderPanel } from "./panel_view.js";
import { ensureStyles } from "./styles.js";

const store = new PanelStore();
const mounted = new Map(); // host element -> stop function
const previews = new Map(); // LoRA name -> Promise<object URL | null>, until the next Refresh

function preview(name) {
  if (!previews.has(name)) previews.set(name, fetchPreview(api, name).catch(() => null));
  return previews.get(name);
}

function forgetPreviews() {
  for (const pending of previews.values()) pending.then((url) => url && URL.revokeObjectURL(url));
  previews.clear();
}

const actions = {
  refresh() {
    forgetPreviews();
    return store.refresh(() => fetchSnapshot(api));
  },
  release(pipelineId) {
    return store.release(pipelineId, (id) => releasePipeline(api, id));
  },
  preview,
};

function mount(host) {
  if (mounted.has(host)) return; // the frontend may call render again for the same element
  ensureStyles();
  const root = el("div", { cls: "loradeck-panel", attrs: { "data-testid": "loradeck-panel" } });
  host.replaceChildren(root);
  const draw = () => renderPanel(root, store, actions);
  mounted.set(host, store.subscribe(draw));
  draw();
  actions.refresh();
}

function unmountAll() {
  for (const stop of mounted.values()) stop();
  mounted.clear();
}

onSnapshot(api, (snapshot) => store.applySnapshot(snapshot)); // before any event can arrive

app.registerExtension({
  name: "loradeck.Panel",
  setup() {
    const manager = app.extensionManager;
    if (typeof manager?.registerSidebarTab !== "function") {
      console.warn("LoRA Deck: this ComfyUI frontend has no sidebar tabs; the panel is not available");
      return;
    }
    manager.registerSidebarTab({
      id: "loradeck",
      icon: "pi pi-clone",
      title: "LoRA Deck",
      tooltip: "LoRA Deck: live pipelines and their adapters",
      type: "custom",
      render: mount,
      destroy: unmountAll,
    });
  },
});
