// LoRA Deck: the one client of the pack's namespaced routes and websocket event.
// Pure helpers taking ComfyUI's `api` object; loading this module does nothing.

export const SNAPSHOT_EVENT = "loradeck.snapshot";
export const SNAPSHOT_ROUTE = "/loradeck/snapshot";
export const RESOLVE_ROUTE = "/loradeck/resolve";

async function getJson(api, route) {
  const response = await api.fetchApi(route, { cache: "no-store" });
  if (!response.ok) throw new Error(`${route} answered HTTP ${response.status}`);
  return response.json();
}

/** The live pipelines and recent snapshots: {pipelines: [...], recent: [...], truncated}. */
export function fetchSnapshot(api) {
  return getJson(api, SNAPSHOT_ROUTE);
}

/** Where a workflow's LoRA name is on this server: {found: localName | null, how, error}. */
export function resolveLora(api, name, hashes = []) {
  const query = new URLSearchParams({ name });
  for (const hash of hashes) if (hash) query.append("hash", hash);
  return getJson(api, `${RESOLVE_ROUTE}?${query}`);
}

/** Call `listener(snapshot)` for every live snapshot; returns a function that stops listening. */
export function onSnapshot(api, listener) {
  const handler = (event) => listener(event.detail);
  api.addEventListener(SNAPSHOT_EVENT, handler);
  return () => api.removeEventListener(SNAPSHOT_EVENT, handler);
}
