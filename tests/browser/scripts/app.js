// Stand-in for the ComfyUI frontend's scripts/app.js: just the parts LoRA Deck's extensions use.
export const app = {
  extensions: [],
  registerExtension(extension) {
    this.extensions.push(extension);
  },
  extensionManager: {
    sidebarTabs: [],
    registerSidebarTab(tab) {
      this.sidebarTabs.push(tab);
    },
  },
};
window.__app = app;
