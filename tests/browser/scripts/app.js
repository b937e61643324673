// Stand-in for the ComfyUI frontend's scripts/app.js: just the parts LoRA Deck's extensions use.
export const app = {
  extensions: [],
  registerExtension(extension) {
    this.extensions.push(extension);
  },
  graph: { getNodeById: (id) => window.__nodesById?.[id] ?? null },
  extensionManager: {
    sidebarTabs: [],
    registerSidebarTab(tab) {
      this.sidebarTabs.push(tab);
    },
    toasts: [],
    toast: { add(message) { app.extensionManager.toasts.push(message); } },
  },
};
window.__app = app;
