// LoRA Deck: LoRA List's rows as the node saves them — JSON text in its one widget (nodes/lora_list.py reads the
// same format). Pure: loading this module does nothing.

export const EMPTY = "[]";
// Node types whose first widget holds these rows: LoRA List and LoRA Loader (LoRA Deck)
export const ROWS_TYPES = new Set(["LoRAList|LoRADeck", "LoRALoader|LoRADeck"]);

function number(value, fallback) {
  const n = Number(value);
  return Number.isFinite(n) ? n : fallback;
}

/** One row with every field present and of the right type. */
export function normaliseRow(row) {
  const model = number(row?.strength_model, 1);
  return {
    enabled: row?.enabled !== false,
    lora_name: typeof row?.lora_name === "string" ? row.lora_name : "",
    strength_model: model,
    strength_clip: number(row?.strength_clip, model),
    sha256: typeof row?.sha256 === "string" ? row.sha256 : "",
  };
}

/** The widget's text -> rows ([] for anything that is not a JSON list). */
export function parseRows(text) {
  try {
    const items = JSON.parse(typeof text === "string" && text ? text : EMPTY);
    return Array.isArray(items) ? items.map(normaliseRow) : [];
  } catch {
    return [];
  }
}

export function rowsText(rows) {
  return JSON.stringify(rows.map(normaliseRow));
}
