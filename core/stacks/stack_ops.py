"""Pure edits of a StackSpec: what each node (and the Python API) does to a description. No file is read here."""

from __future__ import annotations

from dataclasses import replace

from ..errors import SpecError
from ..frozen import evolve
from ..models.family import CLIP_GROUP, MODEL_GROUP, Family
from .specs import StackSpec, check_strength


def set_weights(stack: StackSpec, name: str, weights: dict[str, float] | None = None,
                enabled: bool | None = None, blocks: tuple | None = None) -> StackSpec:
    """New weights (merged over the old, per key), enabled flag and/or block weights for one adapter."""
    adapter = stack.get(name)
    if weights:
        adapter = adapter.with_weights(**weights)
    if blocks is not None:
        adapter = replace(adapter, blocks=tuple(blocks))
    if enabled is not None and bool(enabled) != adapter.enabled:  # unchanged (set_adapters asks): the same spec
        adapter = evolve(adapter, enabled=bool(enabled))  # __post_init__ checks nothing about it
    return stack.replace_adapter(name, adapter)


def components_of(names, family: Family) -> tuple[str, ...]:
    """Component names (``unet``, ``text_encoder_2``) or groups (``model`` = the denoiser and its experts,
    ``clip`` = every text encoder) -> the family's components, sorted; SpecError names the choices. Empty means
    all."""
    if isinstance(names, str):
        names = parse_names(names)
    out = set()
    for name in names or ():
        if name == MODEL_GROUP:
            out.update(family.denoisers)
        elif name == CLIP_GROUP:
            out.update(family.text_encoders)
        elif name in family.components:
            out.add(name)
        else:
            raise SpecError(f"no component {name!r} in a {family.title} pipeline; choose from "
                            f"{[*family.components, MODEL_GROUP, CLIP_GROUP]}")
    return tuple(sorted(out))


def fuse(stack: StackSpec, lora_scale: float = 1.0, names: list[str] | None = None,
         safe_fusing: bool = True, components: tuple[str, ...] = ()) -> StackSpec:
    """Mark enabled adapters (all, or ``names``) fused at ``lora_scale``, in ``components`` only (from
    ``components_of``; empty = all, added to where an adapter is fused already); the others stay as they are."""
    lora_scale = check_strength(lora_scale, "lora_scale")
    chosen = set(names) if names else {a.name for a in stack.adapters if a.enabled}
    for name in chosen:
        if not stack.get(name).enabled:
            raise SpecError(f"adapter {name!r} is disabled; enable it before fusing it")

    def fused(a):
        where = () if not components or (a.fused and not a.fuse_components) else \
            tuple(set(components) | set(a.fuse_components if a.fused else ()))
        return replace(a, fused=True, fuse_scale=lora_scale, fuse_components=where)

    adapters = tuple(fused(a) if a.name in chosen else a for a in stack.adapters)
    return replace(stack, adapters=adapters, safe_fusing=bool(safe_fusing))


def unfuse(stack: StackSpec, components: tuple[str, ...] = (), family: Family | None = None) -> StackSpec:
    """Every adapter back to unfused at its own weights (the fuse scale is dropped); with ``components``
    (and the ``family`` they belong to) only there, the rest stays fused."""
    if components and family is None:
        raise ValueError("unfuse(components=...) needs the pipeline's family")

    def unfused(a):
        if not a.fused:
            return a
        if components:
            where = set(a.fuse_components or family.components) - set(components)
            if where:
                return replace(a, fuse_components=tuple(where))
        return replace(a, fused=False, fuse_scale=1.0, fuse_components=())

    return replace(stack, adapters=tuple(unfused(a) for a in stack.adapters))


def set_many(stack: StackSpec, weights: dict[str, dict[str, float]]) -> StackSpec:
    """New weights for several adapters at once (adapter name -> {group or component: strength})."""
    for name, changes in weights.items():
        stack = set_weights(stack, name, changes)
    return stack


def parse_names(text: str) -> list[str]:
    """'a, b' -> ['a', 'b']; one name per comma or line."""
    return [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]
