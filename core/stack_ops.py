"""Pure edits of a StackSpec: what each node (and the Python API) does to a description. No file is read here."""

from __future__ import annotations

from dataclasses import replace

from .errors import SpecError
from .specs import StackSpec, check_strength


def set_weights(stack: StackSpec, name: str, weights: dict[str, float] | None = None,
                enabled: bool | None = None, blocks: tuple | None = None) -> StackSpec:
    """New weights (merged over the old, per key), enabled flag and/or block weights for one adapter."""
    adapter = stack.get(name)
    if weights:
        adapter = adapter.with_weights(**weights)
    if blocks is not None:
        adapter = replace(adapter, blocks=tuple(blocks))
    if enabled is not None:
        adapter = replace(adapter, enabled=bool(enabled))
    return stack.replace_adapter(name, adapter)


def fuse(stack: StackSpec, lora_scale: float = 1.0, names: list[str] | None = None,
         safe_fusing: bool = True) -> StackSpec:
    """Mark enabled adapters (all, or ``names``) fused at ``lora_scale``; the others stay as they are."""
    lora_scale = check_strength(lora_scale, "lora_scale")
    chosen = set(names) if names else {a.name for a in stack.adapters if a.enabled}
    for name in chosen:
        if not stack.get(name).enabled:
            raise SpecError(f"adapter {name!r} is disabled; enable it before fusing it")
    adapters = tuple(replace(a, fused=True, fuse_scale=lora_scale) if a.name in chosen else a for a in stack.adapters)
    return replace(stack, adapters=adapters, safe_fusing=bool(safe_fusing))


def unfuse(stack: StackSpec) -> StackSpec:
    """Every adapter back to unfused at its own weights (the fuse scale is dropped)."""
    adapters = tuple(replace(a, fused=False, fuse_scale=1.0) for a in stack.adapters)
    return replace(stack, adapters=adapters)


def parse_names(text: str) -> list[str]:
    """'a, b' -> ['a', 'b']; one name per comma or line."""
    return [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]
