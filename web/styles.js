// LoRA Deck: the panel's and node info's CSS, added once to the page. Uses the frontend's colour
// variables so light and dark palettes both work. Loading this module does nothing until called.

const STYLE_ID = "loradeck-styles";

const CSS = `
.loradeck-panel { padding: 8px; font-size: 13px; color: var(--fg-color, #ddd); overflow-y: auto; height: 100%;
  box-sizing: border-box; }
.loradeck-header { display: flex; align-items: center; justify-content: space-between; gap: 8px; }
.loradeck-header h3 { margin: 0; font-size: 15px; }
.loradeck-button { font: inherit; padding: 2px 8px; cursor: pointer; border-radius: 4px;
  border: 1px solid var(--border-color, #555); background: var(--comfy-input-bg, #222); color: inherit; }
.loradeck-button[disabled] { opacity: 0.6; cursor: default; }
.loradeck-release { font-size: 11px; padding: 0 6px; flex: none; }
.loradeck-pipeline { margin: 8px 0; padding: 6px; border: 1px solid var(--border-color, #444); border-radius: 6px; }
.loradeck-pipeline-head, .loradeck-adapter-head { display: flex; align-items: center; gap: 6px; min-width: 0; }
.loradeck-label, .loradeck-name { font-weight: 600; flex: 1 1 auto; }
.loradeck-ellipsis { display: inline-block; overflow: hidden; white-space: nowrap; text-overflow: ellipsis;
  min-width: 0; max-width: 100%; vertical-align: bottom; }
.loradeck-line { display: flex; gap: 4px; min-width: 0; line-height: 1.4; }
.loradeck-adapters { list-style: none; margin: 4px 0 0; padding: 0; }
.loradeck-adapter { padding: 4px 0 4px 6px; border-top: 1px solid var(--border-color, #333); min-width: 0;
  display: flex; gap: 6px; align-items: flex-start; }
.loradeck-adapter-body { flex: 1 1 auto; min-width: 0; }
.loradeck-preview { width: 48px; height: 48px; object-fit: cover; border-radius: 4px; flex: none; }
.loradeck-branch { margin: 6px 0 0; padding: 4px 0 0 6px; border-left: 2px solid var(--border-color, #444); }
.loradeck-branch[data-current="true"] { border-left-color: #2e8b57; }
.loradeck-branch-head { display: flex; flex-wrap: wrap; align-items: center; gap: 2px 6px; min-width: 0; }
.loradeck-source { font-weight: 600; flex: 0 1 auto; min-width: 0; overflow-wrap: anywhere; }
.loradeck-wrap { min-width: 0; overflow-wrap: anywhere; }
.loradeck-muted, .loradeck-key { color: var(--descrip-text, #999); white-space: nowrap; }
.loradeck-badge { font-size: 11px; padding: 0 5px; border-radius: 8px; white-space: nowrap;
  border: 1px solid var(--border-color, #555); }
.loradeck-badge-fused { background: #6a4b00; color: #fff; }
.loradeck-badge-active { background: #1f5130; color: #fff; }
.loradeck-badge-off { background: #555; color: #fff; }
.loradeck-badge-warn { background: #8a3b00; color: #fff; }
.loradeck-badge-now { background: #1d4d6e; color: #fff; }
.loradeck-words { display: flex; flex-wrap: wrap; gap: 3px; min-width: 0; }
.loradeck-word { max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font: inherit;
  font-size: 11px; padding: 0 4px; border-radius: 3px; background: var(--comfy-input-bg, #222); color: inherit;
  border: 1px solid transparent; cursor: copy; }
.loradeck-word:hover { border-color: var(--border-color, #666); }
.loradeck-copied { border-color: #2e8b57; }
.loradeck-warn { color: #e0a030; }
.loradeck-error { color: #ff6b6b; margin: 6px 0; overflow-wrap: anywhere; }
.loradeck-empty { margin: 16px 0; text-align: center; }
.loradeck-empty-line { color: var(--descrip-text, #999); font-style: italic; margin: 4px 0; }
.loradeck-recent ul { list-style: none; padding: 0; margin: 4px 0; }
.loradeck-recent-item { display: flex; gap: 6px; min-width: 0; }
.loradeck-node-info { font-size: 11px; line-height: 1.35; overflow: hidden; padding: 3px 4px;
  color: var(--fg-color, #ddd); white-space: pre-wrap; overflow-wrap: anywhere; box-sizing: border-box; }
.loradeck-node-info-body { height: auto; }
.loradeck-card { display: flex; gap: 6px; align-items: flex-start; margin-bottom: 3px; white-space: normal; }
.loradeck-node-preview { width: 64px; height: 64px; object-fit: cover; border-radius: 4px; flex: none; }
.loradeck-card-title { font-weight: 600; }
.loradeck-rows { font-size: 12px; color: var(--fg-color, #ddd); box-sizing: border-box; padding: 2px 4px; overflow: hidden; }
.loradeck-row { display: grid; grid-template-columns: 18px minmax(60px, 1fr) 56px 56px 22px; gap: 4px;
  align-items: center; height: 28px; }
.loradeck-row-head { height: 16px; font-size: 10px; color: var(--descrip-text, #999); }
.loradeck-row-off .loradeck-row-name, .loradeck-row-off .loradeck-row-number { opacity: 0.5; }
.loradeck-row select, .loradeck-row input[type=number] { font: inherit; min-width: 0; width: 100%; box-sizing: border-box;
  background: var(--comfy-input-bg, #222); color: inherit; border: 1px solid var(--border-color, #555); border-radius: 4px; }
.loradeck-row-remove { font: inherit; background: none; border: none; color: inherit; cursor: pointer; padding: 0; }
.loradeck-rows-foot { display: flex; align-items: center; gap: 8px; margin-top: 4px; height: 24px; }
`;

/** Add the stylesheet to `doc` unless it is there already. */
export function ensureStyles(doc = document) {
  if (doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  doc.head.append(style);
}
