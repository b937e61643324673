// LoRA Deck: the one client of the pack's namespaced routes and websocket event.
// Pure helpers taking ComfyUI's `api` object; loading this module does nothing.

export const SNAPSHOT_EVENT = "loradeck.snapshot";
export const SNAPSHOT_ROUTE = "/loradeck/snapshot";
export const RESOLVE_ROUTE = "/loradeck/resolve";
export const LORA_ROUTE = "/loradeck/lora";
export const PREVIEW_ROUTE = "/loradeck/preview";
export const RELEASE_ROUTE = "/loradeck/release";

async function getJson(api, route) {
  const response = await api.fetchApi(route, { cache: "no-store" });
  if (!response.ok) throw new Error(`${route} answered HTTP ${response.status}`);
  return response.json();
}

function withHashes(route, name, hashes) {
  const query = new URLSearchParams({ name });
  for (const hash of hashes) if (hash) query.append("hash", hash);
  return `${route}?${query}`;
}

/** The live pipelines (each with its branches) and recent snapshots: {pipelines: [...], recent: [...], truncated}. */
export function fetchSnapshot(api) {
  return getJson(api, SNAPSHOT_ROUTE);
}

/** Where a workflow's LoRA name is on this server: {found: localName | null, how, hash_checked, error}. */
export function resolveLora(api, name, hashes = []) {
  return getJson(api, withHashes(RESOLVE_ROUTE, name, hashes));
}

/** One LoRA's identity and header: {found, sha256, title, trigger_words, base_model, preview}; found is null
 * (with an error text) when this server has no such file. */
export function loraInfo(api, name, hashes = []) {
  return getJson(api, withHashes(LORA_ROUTE, name, hashes));
}

/** An object URL of the LoRA's preview picture, or null when it has none (the route answers 204). */
export async function fetchPreview(api, name) {
  const response = await api.fetchApi(`${PREVIEW_ROUTE}?${new URLSearchParams({ name })}`);
  if (response.status !== 200) return null;
  const blob = await response.blob();
  return blob.type.startsWith("image/") ? URL.createObjectURL(blob) : null;
}

/** Ask the server to drop one cached pipeline (by its stable id); resolves to true if it was there. */
export async function releasePipeline(api, pipelineId) {
  const response = await api.fetchApi(RELEASE_ROUTE, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ pipeline_id: pipelineId }),
  });
  if (!response.ok) throw new Error(`${RELEASE_ROUTE} answered HTTP ${response.status}`);
  return Boolean((await response.json()).released);
}

/** Call `listener(snapshot)` for every live snapshot; returns a function that stops listening. */
export function onSnapshot(api, listener) {
  const handler = (event) => listener(event.detail);
  api.addEventListener(SNAPSHOT_EVENT, handler);
  return () => api.removeEventListener(SNAPSHOT_EVENT, handler);
}
