"""What the LoRA Deck panel receives: JSON-safe, size-capped copies of immutable pipeline snapshots.

Pure functions (no ComfyUI, no aiohttp, never a pipeline): LoRA metadata is attacker-controlled and
may be huge, so every string, list and mapping is capped here and the whole answer fits a byte budget.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

VERSION = 2  # 2: pipelines carry the last snapshot of each branch; adapters carry state, blocks, lora_name
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_TEXT = 2000  # characters per string
MAX_ITEMS = 100  # entries per list or mapping inside an adapter
MAX_ADAPTERS = 200  # adapters per pipeline before the byte budget is even considered
MAX_DEPTH = 6
MAX_BRANCHES = 16  # branch snapshots per pipeline (the owner keeps as many)
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


def no_name(path: str) -> None:
    return None


def snapshot_dict(snapshot, lora_name: Callable[[str], str | None] = no_name) -> dict:
    """One PipelineSnapshot as the panel draws it (adapters beyond MAX_ADAPTERS dropped and flagged).
    ``lora_name(file)`` gives each adapter's name in the LoRA list (None outside the LoRA folders)."""
    data = snapshot.to_dict()
    adapters = list(data.pop("adapters", ()))
    out = clip(data)
    out["adapters"] = [clip({**a, "lora_name": lora_name(a.get("file", ""))}) for a in adapters[:MAX_ADAPTERS]]
    out["adapters_total"] = len(adapters)
    out["adapters_truncated"] = len(adapters) > MAX_ADAPTERS
    return out


PIPELINE_FIELDS = ("pipeline_id", "label", "family", "dtype", "device", "applied_at")


def pipeline_dict(snapshot, branches, lora_name: Callable[[str], str | None] = no_name) -> dict:
    """A live pipeline: what it is (from its current snapshot) and the last snapshot of each branch that
    applied a stack to it, newest first; the one the model holds now is marked ``current``."""
    data = snapshot.to_dict()
    out = {k: clip(data.get(k)) for k in PIPELINE_FIELDS}
    shown = list(branches)[:MAX_BRANCHES]
    out["branches"] = [{**snapshot_dict(b, lora_name), "current": b is snapshot} for b in shown]
    out["branches_total"] = len(branches)
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


def build(pipelines, recent, max_bytes: int = MAX_RESPONSE_BYTES,
          lora_name: Callable[[str], str | None] = no_name) -> dict:
    """The GET /loradeck/snapshot answer: live pipelines — ``(current snapshot, branch snapshots)`` pairs —
    and recently published snapshots (newest first)."""
    live = [pipeline_dict(current, branches, lora_name) for current, branches in pipelines]
    shown = [b for p in live for b in p["branches"]]
    log = [snapshot_dict(s, lora_name) for s in recent]
    truncated = any(s["adapters_truncated"] for s in shown + log) or any(
        p["branches_total"] > len(p["branches"]) for p in live)
    budget = max_bytes - 512  # room for the envelope
    truncated = fit(shown, int(budget * 0.75)) or truncated
    truncated = fit(log, budget - _size(live)) or truncated
    while log and _size(live) + _size(log) > budget:  # envelopes alone can still be too big: drop old entries
        log.pop()
        truncated = True
    return {"version": VERSION, "generated_at": time.time(), "pipelines": live, "recent": log,
            "truncated": truncated, "max_bytes": max_bytes}


def event(snapshot, max_bytes: int = MAX_RESPONSE_BYTES, lora_name: Callable[[str], str | None] = no_name) -> dict:
    """The ``loradeck.snapshot`` websocket event body: one snapshot, capped like the route's answer."""
    data = snapshot_dict(snapshot, lora_name)
    fit([data], max_bytes - 512)
    return data


def encode(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()
