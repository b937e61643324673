// LoRA Deck: the panel's state — live pipelines by their stable id, each with the last snapshot of every
// branch (Generate / Save node) that applied a stack to it, plus recent snapshots — fed by the GET route on
// open and by websocket events. Each pipeline's branches are kept oldest first whichever fed them (the view shows
// them newest first). Pure: loading this module does nothing.

export const RECENT_MAX = 20;
export const BRANCHES_MAX = 16;

function isSnapshot(snapshot) {
  return snapshot !== null && typeof snapshot === "object" && typeof snapshot.pipeline_id === "string"
    && typeof snapshot.label === "string" && Array.isArray(snapshot.adapters);
}

function sourceKey(snapshot) {
  return typeof snapshot.source === "string" ? snapshot.source : "";
}

/** A pipeline entry of the GET answer -> {pipeline_id, label, ..., branches: Map(source -> snapshot), current}.
 * The server sends branches newest first; the Map holds them oldest first, as live events add them (newest last). */
function fromPayload(pipeline) {
  const branches = (Array.isArray(pipeline.branches) ? pipeline.branches : []).filter(isSnapshot);
  const current = branches.find((snapshot) => snapshot.current === true);
  return {
    pipeline_id: pipeline.pipeline_id, label: pipeline.label, family: pipeline.family, dtype: pipeline.dtype,
    device: pipeline.device, applied_at: pipeline.applied_at,
    branches: new Map([...branches].reverse().map((snapshot) => [sourceKey(snapshot), snapshot])),
    current: current ? sourceKey(current) : null, cut: Number(pipeline.branches_total) > branches.length,
  };
}

export class PanelStore {
  constructor() {
    this.pipelines = new Map(); // pipeline_id -> entry (see fromPayload)
    this.recent = [];
    this.recentOpen = false; // the "Recent activity" fold stays as the user left it across updates
    this.truncated = false;
    this.memory = null; // the adapter store: { held, budget } in bytes
    this.loading = false;
    this.loaded = false;
    this.error = null;
    this.releasing = new Set();
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
    const pipelines = Array.isArray(payload?.pipelines) ? payload.pipelines : [];
    const recent = Array.isArray(payload?.recent) ? payload.recent.filter(isSnapshot) : [];
    this.pipelines = new Map(pipelines.filter((p) => typeof p?.pipeline_id === "string")
      .map((pipeline) => [pipeline.pipeline_id, fromPayload(pipeline)]));
    this.recent = recent.slice(0, RECENT_MAX);
    this.truncated = Boolean(payload?.truncated);
    const held = Number(payload?.store_bytes), budget = Number(payload?.store_budget);
    this.memory = Number.isFinite(held) && Number.isFinite(budget) ? { held, budget } : null;
    Object.assign(this, { loading: false, loaded: true, error: null });
    this.emit();
  }

  /** One live `loradeck.snapshot` event: that branch's new state, now the pipeline's current one. */
  applySnapshot(snapshot) {
    if (!isSnapshot(snapshot)) return;
    const entry = this.pipelines.get(snapshot.pipeline_id) ?? fromPayload({ ...snapshot, branches: [] });
    const source = sourceKey(snapshot);
    entry.branches.delete(source); // re-insert: newest last
    entry.branches.set(source, snapshot);
    while (entry.branches.size > BRANCHES_MAX) entry.branches.delete(entry.branches.keys().next().value);
    Object.assign(entry, { current: source, applied_at: snapshot.applied_at, label: snapshot.label });
    this.pipelines.set(snapshot.pipeline_id, entry);
    this.recent = [snapshot, ...this.recent].slice(0, RECENT_MAX);
    this.loaded = true;
    this.emit();
  }

  setRecentOpen(open) {
    this.recentOpen = Boolean(open); // no redraw: the fold itself already shows it
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

  /** Drop a pipeline from the server's cache; `releaser(id)` resolves when the server answered. */
  async release(pipelineId, releaser) {
    this.releasing.add(pipelineId);
    this.emit();
    try {
      await releaser(pipelineId);
      this.pipelines.delete(pipelineId);
      this.error = null;
    } catch (error) {
      this.error = `Could not release the pipeline: ${error?.message ?? error}`;
    } finally {
      this.releasing.delete(pipelineId);
      this.emit();
    }
  }
}
