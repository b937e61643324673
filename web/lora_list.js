// LoRA Deck: LoRA List's rows editor — one row per LoRA (on/off, file, model and clip strength, remove), plus
// "Add LoRA", which adds an empty row whose file is picked in the row. It is the node's `loras` widget (type
// LORADECK_LORA_LIST): its value is the rows as JSON text, so rows are saved in widgets_values and queued like any
// widget value, in the classic and the Vue renderer. A new node is made wide enough for typical file names; the
// full name of a row's file is its tooltip.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { loraInfo } from "./api_client.js";
import { el } from "./dom.js";
import { normaliseRow, parseRows, rowsText } from "./lora_rows.js";
import { fitNode, holdHeight, slotHeight } from "./node_info.js";
import { ensureStyles } from "./styles.js";

export const WIDGET_TYPE = "LORADECK_LORA_LIST";
export const DEFAULT_WIDTH = 480; // px: a new node shows names like "characters/kohya_style_v2.safetensors" whole
const ROW_HEIGHT = 28; // .loradeck-row
const HEAD_HEIGHT = 16; // .loradeck-row-head
const FOOT_HEIGHT = 28; // .loradeck-rows-foot with its margin
const PADDING = 4; // .loradeck-rows, top and bottom
const MAX_ROWS = 200;
const PICK = "Pick a LoRA…";

function numberInput(value, title, onChange) {
  const input = el("input", { cls: "loradeck-row-number", title, attrs: { type: "number", step: "0.05",
    min: "-100", max: "100" } });
  input.value = String(value);
  input.addEventListener("change", () => {
    const n = Number(input.value);
    if (Number.isFinite(n)) onChange(n);
    else input.value = String(value);
  });
  return input;
}

function nameSelect(value, choices, onChange) {
  const select = el("select", { cls: "loradeck-row-name", title: value || "Pick a LoRA file for this row" });
  const names = choices.includes(value) || !value ? choices : [value, ...choices];
  if (!value) {
    const placeholder = el("option", { text: PICK, attrs: { disabled: "" } });
    placeholder.value = "";
    select.append(placeholder);
  }
  for (const name of names) {
    const option = el("option", { text: choices.includes(name) ? name : `${name} (not on this machine)` });
    option.value = name;
    select.append(option);
  }
  select.value = value;
  select.addEventListener("change", () => onChange(select.value));
  return select;
}

/** The rows editor for one node; `choices` are this server's LoRA names (from the node definition). */
export class RowsEditor {
  constructor(node, choices) {
    this.node = node;
    this.choices = Array.isArray(choices) ? choices.map(String) : [];
    this.rows = [];
    this.element = el("div", { cls: "loradeck-rows", attrs: { "data-testid": "loradeck-rows" } });
  }

  get value() {
    return rowsText(this.rows);
  }

  set value(text) {
    this.rows = parseRows(text);
    this.render();
  }

  changed() {
    this.render();
    this.widget?.callback?.(this.value);
    fitNode(this.node); // as tall as the rows, no more
  }

  update(index, change) {
    this.rows[index] = normaliseRow({ ...this.rows[index], ...change });
    this.changed();
  }

  async pick(index, name) {
    this.update(index, { lora_name: name, sha256: "" }); // another file: its hash is not known yet
    const info = await loraInfo(api, name).catch(() => null);
    if (info?.found === name && info.sha256 && this.rows[index]?.lora_name === name) {
      this.update(index, { sha256: info.sha256 });
    }
  }

  /** A new row with no file yet (picked in the row: which files fit the pipeline is the user's call). */
  add() {
    if (this.rows.length >= MAX_ROWS) return;
    const last = this.rows.at(-1);
    this.rows.push(normaliseRow({ lora_name: "", strength_model: last?.strength_model ?? 1,
      strength_clip: last?.strength_clip ?? 1 }));
    this.changed();
  }

  remove(index) {
    this.rows.splice(index, 1);
    this.changed();
  }

  /** After a run: remember each file's SHA-256 in its row (a shared workflow finds it by hash elsewhere). */
  recordHashes(models) {
    let changed = false;
    for (const model of Array.isArray(models) ? models : []) {
      for (const row of this.rows) {
        if (row.lora_name === model?.name && model.sha256 && row.sha256 !== model.sha256) {
          row.sha256 = model.sha256;
          changed = true;
        }
      }
    }
    if (changed) this.changed();
  }

  rowView(row, index) {
    const toggle = el("input", { cls: "loradeck-row-on", title: "Use this LoRA", attrs: { type: "checkbox" } });
    toggle.checked = row.enabled;
    toggle.addEventListener("change", () => this.update(index, { enabled: toggle.checked }));
    const remove = el("button", { cls: "loradeck-row-remove", text: "✕", title: "Remove this row",
      attrs: { type: "button" } });
    remove.addEventListener("click", () => this.remove(index));
    return el("div", { cls: `loradeck-row${row.enabled ? "" : " loradeck-row-off"}`, attrs: { "data-row": index } }, [
      toggle, nameSelect(row.lora_name, this.choices, (name) => this.pick(index, name)),
      numberInput(row.strength_model, "Strength on the denoiser (model)", (n) => this.update(index, { strength_model: n })),
      numberInput(row.strength_clip, "Strength on the text encoders (clip)", (n) => this.update(index, { strength_clip: n })),
      remove]);
  }

  render() {
    const add = el("button", { cls: "loradeck-button loradeck-row-add", text: "+ Add LoRA", attrs: { type: "button" } });
    add.addEventListener("click", () => this.add());
    const on = this.rows.filter((r) => r.enabled).length;
    const head = this.rows.length ? el("div", { cls: "loradeck-row loradeck-row-head" }, [
      el("span", { text: "on" }), el("span", { text: "LoRA" }), el("span", { text: "model" }),
      el("span", { text: "clip" }), el("span")]) : null;
    this.element.replaceChildren(...[head, ...this.rows.map((row, i) => this.rowView(row, i)),
      el("div", { cls: "loradeck-rows-foot" }, [add, el("span", { cls: "loradeck-muted",
        text: `${on} of ${this.rows.length} on` })])].filter(Boolean));
    holdHeight(this.element, this.height());
  }

  /** Its height in px, from the fixed heights in styles.js: padding, the column heads, the rows, the foot. */
  height() {
    return PADDING + (this.rows.length ? HEAD_HEIGHT : 0) + ROW_HEIGHT * this.rows.length + FOOT_HEIGHT;
  }
}

function choicesOf(inputData) {
  const options = Array.isArray(inputData) ? inputData[1] : null;
  return Array.isArray(options?.choices) ? options.choices : [];
}

app.registerExtension({
  name: "loradeck.LoRAList",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== "LoRAList|LoRADeck") return;
    // A node added from search or the menu is made wider once it is in the graph (a workflow that loads sets its
    // own size afterwards: LiteGraph configures a node after adding it).
    const added = nodeType.prototype.onAdded;
    nodeType.prototype.onAdded = function () {
      const result = added?.apply(this, arguments);
      if (this.size?.length >= 2 && this.size[0] < DEFAULT_WIDTH) this.setSize?.([DEFAULT_WIDTH, this.size[1]]);
      return result;
    };
  },
  getCustomWidgets() {
    return {
      [WIDGET_TYPE](node, inputName, inputData) {
        ensureStyles();
        const editor = new RowsEditor(node, choicesOf(inputData));
        const widget = node.addDOMWidget(inputName, WIDGET_TYPE, editor.element, {
          getValue: () => editor.value,
          setValue: (text) => { editor.value = text; },
          getMinHeight: () => slotHeight(widget, editor.height()),
          getMaxHeight: () => slotHeight(widget, editor.height()),
          hideOnZoom: false,
          // 1.58.1's side panel would draw it as a canvas widget of the panel's width, and that width would then
          // size it on the node too; the rows are edited on the node
          hideInPanel: true,
        });
        editor.widget = widget;
        editor.value = inputData?.[1]?.default ?? "[]";
        node.onLoraDeckHashes = (models) => editor.recordHashes(models);
        return { widget };
      },
    };
  },
});
