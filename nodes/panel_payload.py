"""What the LoRA Deck panel receives: JSON-safe, size-capped copies of immutable pipeline snapshots.

Pure functions (no ComfyUI, no aiohttp, never a pipeline): LoRA metadata is attacker-controlled and
may be huge, so every string, list and mapping is capped here and the whole answer fits a byte budget.
"""

from __future__ import annotations

import json
import math
import time

VERSION = 1
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_TEXT = 2000  # characters per string
MAX_ITEMS = 100  # entries per list or mapping inside an adapter
MAX_ADAPTERS = 200  # adapters per pipeline before the byte budget is even considered
MAX_DEPTH = 6
CUT = "…"


def clip(value, depth: int = 0):
    """A JSON-safe copy of ``value`` with long strings, long lists, big mappings and deep nesting cut."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + CUT
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        return CUT
    if isinstance(value, dict):
        return {clip(str(k)): clip(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
    if isinstance(value, (list, tuple)):
        return [clip(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    return clip(str(value), depth)


def snapshot_dict(snapshot) -> dict:
    """One PipelineSnapshot as the panel draws it (adapters beyond MAX_ADAPTERS dropped and flagged)."""
    data = snapshot.to_dict()
    adapters = list(data.pop("adapters", ()))
    out = clip(data)
    out["adapters"] = [clip(a) for a in adapters[:MAX_ADAPTERS]]
    out["adapters_total"] = len(adapters)
    out["adapters_truncated"] = len(adapters) > MAX_ADAPTERS
    return out


def _size(value) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def fit(snapshots: list[dict], budget: int) -> bool:
    """Drop adapters (from the end of the longest list) until ``snapshots`` fit ``budget`` bytes; True if cut."""
    sizes = [[_size(a) + 1 for a in s["adapters"]] for s in snapshots]
    total = _size([{**s, "adapters": []} for s in snapshots]) + sum(map(sum, sizes))
    cut = False
    while total > budget and any(sizes):
        longest = max(range(len(snapshots)), key=lambda i: len(sizes[i]))
        snapshots[longest]["adapters"].pop()
        total -= sizes[longest].pop()
        snapshots[longest]["adapters_truncated"] = cut = True
    return cut


def build(pipelines, recent, max_bytes: int = MAX_RESPONSE_BYTES) -> dict:
    """The GET /loradeck/snapshot answer: live pipelines and recently published snapshots (newest first)."""
    live = [snapshot_dict(s) for s in pipelines]
    log = [snapshot_dict(s) for s in recent]
    truncated = any(s["adapters_truncated"] for s in live + log)
    budget = max_bytes - 512  # room for the envelope
    truncated = fit(live, int(budget * 0.75)) or truncated
    truncated = fit(log, budget - _size(live)) or truncated
    while log and _size(live) + _size(log) > budget:  # envelopes alone can still be too big: drop old entries
        log.pop()
        truncated = True
    return {"version": VERSION, "generated_at": time.time(), "pipelines": live, "recent": log,
            "truncated": truncated, "max_bytes": max_bytes}


def event(snapshot, max_bytes: int = MAX_RESPONSE_BYTES) -> dict:
    """The ``loradeck.snapshot`` websocket event body: one snapshot, capped like the route's answer."""
    data = snapshot_dict(snapshot)
    fit([data], max_bytes - 512)
    return data


def encode(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()
