"""Block weights on Chroma, by the names its users know and by diffusers' names.

ComfyUI, sd-scripts and ai-toolkit name Chroma's blocks as FLUX.1's: ``double_blocks.N`` (diffusers'
``transformer_blocks``) and ``single_blocks.N`` (``single_transformer_blocks``); both spellings take index
ranges (``double_blocks.0-9=0.5``, exact indexes as ``stacks.block_weights.RANGES``). Chroma's approximator,
``distilled_guidance_layer`` (which computes every block's modulation), is a third group: the whole of it, or
its MLP layers by index (``distilled_guidance_layer.0-2``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import SpecError
from ...stacks.block_weights import RANGES, Scheme
from .names import APPROXIMATOR

if TYPE_CHECKING:
    import torch

ORIGINAL = {"double_blocks": "transformer_blocks", "single_blocks": "single_transformer_blocks"}


def _groups(model: torch.nn.Module) -> dict[str, int]:
    """Group name (both spellings) -> its block count; the approximator counts its MLP layers."""
    counts = {name: len(getattr(model, diffusers, ())) for name, diffusers in ORIGINAL.items()}
    counts.update({diffusers: counts[name] for name, diffusers in ORIGINAL.items()})
    counts[APPROXIMATOR] = len(getattr(getattr(model, APPROXIMATOR, None), "layers", ()))
    return counts


def _check(key: str, value, model: torch.nn.Module) -> tuple[str, int | None, int | None]:
    if isinstance(value, tuple):
        raise SpecError(f"{key!r}: Chroma block ranges take one value")
    match = RANGES.key.match(key)
    groups = _groups(model)
    if not match or match.group(1) not in groups:
        shown = ", ".join(f"{original} / {diffusers} (0-{groups[original] - 1})"
                          for original, diffusers in ORIGINAL.items())
        raise SpecError(f"{key!r}: Chroma's block groups are {shown} and {APPROXIMATOR} "
                        f"(its layers 0-{groups[APPROXIMATOR] - 1})")
    group, start, end = match.groups()
    lo = int(start) if start is not None else None
    hi = int(end) if end is not None else lo
    if lo is not None and (hi >= groups[group] or lo > hi):
        raise SpecError(f"{key!r}: {group} has blocks 0-{groups[group] - 1}")
    return group, lo, hi


def _rule(key: str, value, model: torch.nn.Module) -> Callable[[str], float | None]:
    group, lo, hi = _check(key, value, model)
    if group != APPROXIMATOR:
        diffusers = ORIGINAL.get(group, group)
        return RANGES.rule(diffusers + key[len(group):], value, model)
    prefix = APPROXIMATOR + "."

    def rule(name: str):
        if not name.startswith(prefix):
            return None
        if lo is None:
            return float(value)
        bits = name.split(".")  # distilled_guidance_layer.layers.N.linear_1
        inside = len(bits) > 2 and bits[1] == "layers" and bits[2].isdigit() and lo <= int(bits[2]) <= hi
        return float(value) if inside else None

    return rule


BLOCKS = Scheme(RANGES.key, f"lbw, double_blocks.N-M, single_blocks.N-M (or diffusers' transformer_blocks / "
                            f"single_transformer_blocks), {APPROXIMATOR} or {APPROXIMATOR}.N-M", _rule)
