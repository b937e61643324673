// Test harness standing in for the ComfyUI frontend: loads every extension module the server lists
// (as the frontend does), runs setup, renders registered sidebar tabs and builds fake loader nodes
// (LoRA List's rows widget comes from the extensions' getCustomWidgets, as in the frontend).
import { app } from "/scripts/app.js";
import { api } from "/scripts/api.js";

const NODE_TYPES = {
  "LoadLoRA|LoRADeck": { display_name: "Load LoRA (LoRA Deck)" },
  "StackLoRA|LoRADeck": { display_name: "Stack LoRAs" },
  "LoRAList|LoRADeck": { display_name: "LoRA List",
    input: { required: { loras: ["LORADECK_LORA_LIST", { default: "[]",
      choices: ["a.safetensors", "hostile.safetensors", "k.safetensors", "sub/b.safetensors"] }] } } },
};

class FakeNode {
  constructor(type) {
    this.type = type;
    this.comfyClass = type;
    this.widgets = [];
    this.properties = {};
    this.size = [300, 80];
    this.box = document.createElement("div");
    this.box.className = "fake-node";
    this.box.dataset.type = type;
    document.getElementById("nodes").append(this.box);
  }

  addDOMWidget(name, type, element, options) {
    const widget = { name, type, element, options, value: undefined };
    if (options?.getValue) Object.defineProperty(widget, "value", { get: options.getValue, set: options.setValue });
    this.widgets.push(widget);
    this.box.append(element);
    return widget;
  }

  computeSize() {
    return [300, 40 + this.widgets.reduce((sum, w) => sum + (w.options?.getMinHeight?.() ?? 20), 0)];
  }

  setSize(size) {
    this.size = size;
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
  const widgets = Object.assign({}, ...app.extensions.map((e) => e.getCustomWidgets?.() ?? {}));
  window.__nodes = {};
  window.__nodesById = {};
  let id = 100;
  for (const [type, def] of Object.entries(NODE_TYPES)) {
    const nodeType = class extends FakeNode {};
    nodeType.prototype.onExecuted = function () { this.originalCalls = (this.originalCalls ?? 0) + 1; };
    for (const extension of app.extensions) {
      await extension.beforeRegisterNodeDef?.(nodeType, { name: type, ...def });
    }
    const node = new nodeType(type);
    for (const [name, spec] of Object.entries(def.input?.required ?? {})) widgets[spec[0]]?.(node, name, spec, app);
    node.onNodeCreated?.();
    node.id = id++;
    window.__nodes[type] = node;
    window.__nodesById[node.id] = node;
  }
  window.__ready = true;
}

main().catch((error) => { window.__harnessError = String(error?.stack ?? error); });
