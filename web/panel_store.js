// LoRA Deck: the panel's state — live pipelines by label plus recent snapshots — fed by the GET route
// on open and by websocket events. Pure: loading this module does nothing.

export const RECENT_MAX = 20;

function isSnapshot(value) {
  return value !== null && typeof value === "object" && typeof value.label === "string"
    && Array.isArray(value.adapters);
}

export class PanelStore {
  constructor() {
    this.pipelines = new Map(); // label -> snapshot
    this.recent = [];
    this.truncated = false;
    this.memory = null; // the adapter store: { held, budget } in bytes
    this.loading = false;
    this.loaded = false;
    this.error = null;
    this.listeners = new Set();
  }

  /** Call `listener(store)` after every change; returns the unsubscribe function. */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit() {
    for (const listener of [...this.listeners]) {
      try {
        listener(this);
      } catch (error) {
        console.warn("LoRA Deck panel listener failed", error);
      }
    }
  }

  /** Fill from a GET /loradeck/snapshot answer (replaces the pipelines, keeps nothing stale). */
  applyPayload(payload) {
    const pipelines = Array.isArray(payload?.pipelines) ? payload.pipelines.filter(isSnapshot) : [];
    const recent = Array.isArray(payload?.recent) ? payload.recent.filter(isSnapshot) : [];
    this.pipelines = new Map(pipelines.map((s) => [s.label, s]));
    this.recent = recent.slice(0, RECENT_MAX);
    this.truncated = Boolean(payload?.truncated);
    const held = Number(payload?.store_bytes), budget = Number(payload?.store_budget);
    this.memory = Number.isFinite(held) && Number.isFinite(budget) ? { held, budget } : null;
    Object.assign(this, { loading: false, loaded: true, error: null });
    this.emit();
  }

  /** One live `loradeck.snapshot` event: that pipeline's new state, newest in the recent list. */
  applySnapshot(snapshot) {
    if (!isSnapshot(snapshot)) return;
    this.pipelines.set(snapshot.label, snapshot);
    this.recent = [snapshot, ...this.recent].slice(0, RECENT_MAX);
    this.loaded = true;
    this.emit();
  }

  setLoading() {
    this.loading = true;
    this.emit();
  }

  setError(message) {
    Object.assign(this, { loading: false, error: String(message) });
    this.emit();
  }

  /** Ask the server again; `fetcher` resolves to a payload. */
  async refresh(fetcher) {
    this.setLoading();
    try {
      this.applyPayload(await fetcher());
    } catch (error) {
      this.setError(`Could not load the LoRA Deck state: ${error?.message ?? error}`);
    }
  }
}
