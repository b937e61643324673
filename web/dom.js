// LoRA Deck: tiny DOM helpers. Every string goes in through textContent or setAttribute, never innerHTML:
// LoRA metadata and workflow text are attacker-controlled. Pure helpers; loading this module does nothing.

/** An element with an optional class, text and title (all set as text, never parsed as HTML). */
export function el(tag, { cls = "", text = null, title = null, attrs = {} } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== null && text !== undefined) node.textContent = String(text);
  if (title !== null && title !== undefined) node.setAttribute("title", String(title));
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) if (child) node.append(child);
  return node;
}

/** A one-line text that ends in an ellipsis when too long; the tooltip shows `title` (default: the text). */
export function ellipsis(text, cls = "", title = null) {
  const value = String(text ?? "");
  return el("span", { cls: `loradeck-ellipsis ${cls}`.trim(), text: value, title: title ?? value });
}

/** A small label such as "fused" or "disabled". */
export function badge(text, kind = "") {
  return el("span", { cls: `loradeck-badge ${kind ? `loradeck-badge-${kind}` : ""}`.trim(), text });
}
