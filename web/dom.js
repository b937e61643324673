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

/** Put `text` on the clipboard (the async API where the page may use it, else a hidden textarea). */
export async function copyText(text) {
  if (navigator.clipboard?.writeText && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // denied (no focus, no permission): fall back below
    }
  }
  const area = el("textarea", { attrs: { readonly: "", "aria-hidden": "true" } });
  area.value = text;
  area.style.cssText = "position:fixed;left:-9999px;top:0;opacity:0";
  document.body.append(area);
  area.select();
  const done = document.execCommand?.("copy") ?? false;
  area.remove();
  return done;
}

/** A trigger word: click copies it (shift-click copies every word of the group, comma-separated). */
export function wordChip(word, all = [word]) {
  const chip = el("button", { cls: "loradeck-word", text: word, title: `Copy "${word}" (shift-click: all)`,
    attrs: { type: "button" } });
  chip.addEventListener("click", async (event) => {
    event.stopPropagation();
    const ok = await copyText(event.shiftKey ? all.join(", ") : word);
    chip.classList.toggle("loradeck-copied", ok);
    chip.setAttribute("title", ok ? "Copied" : "Could not copy: select the word instead");
    setTimeout(() => chip.classList.remove("loradeck-copied"), 1200);
  });
  return chip;
}
