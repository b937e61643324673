// Test harness standing in for the ComfyUI frontend: loads every extension module the server lists
// (as the frontend does), runs setup, renders registered sidebar tabs and builds fake loader nodes.
import { app } from "/scripts/app.js";
import { api } from "/scripts/api.js";

const NODE_TYPES = ["LoadLoRA|LoRADeck", "StackLoRA|LoRADeck"];

class FakeNode {
  constructor(type) {
    this.type = type;
    this.widgets = [];
    this.properties = {};
    this.box = document.createElement("div");
    this.box.className = "fake-node";
    this.box.dataset.type = type;
    document.getElementById("nodes").append(this.box);
  }

  addDOMWidget(name, type, element, options) {
    const widget = { name, type, element, options, value: undefined };
    this.widgets.push(widget);
    this.box.append(element);
    return widget;
  }

  setDirtyCanvas() {}
}

async function main() {
  const urls = await (await fetch("/extensions")).json();
  for (const url of urls) await import(url);
  await api.connected;
  for (const extension of app.extensions) await extension.setup?.();
  for (const tab of app.extensionManager.sidebarTabs) {
    const host = document.createElement("div");
    host.id = `tab-${tab.id}`;
    document.getElementById("sidebar").append(host);
    tab.render(host);
  }
  window.__nodes = {};
  for (const type of NODE_TYPES) {
    const nodeType = class extends FakeNode {};
    nodeType.prototype.onExecuted = function () { this.originalCalls = (this.originalCalls ?? 0) + 1; };
    for (const extension of app.extensions) await extension.beforeRegisterNodeDef?.(nodeType, { name: type });
    window.__nodes[type] = new nodeType(type);
  }
  window.__ready = true;
}

main().catch((error) => { window.__harnessError = String(error?.stack ?? error); });
