"""Original (BFL / SAI / ...) module names as diffusers names: the pieces each family's name table is made of.

kohya-ss sd-scripts, ComfyUI, XLabs and most civitai files name transformer modules as the original
models do (``double_blocks.0.img_attn.qkv``, ``joint_blocks.0.x_block.attn.qkv``). Some of those are fused
layers diffusers keeps apart: ``qkv`` is ``to_q``, ``to_k`` and ``to_v`` stacked by rows, and Flux's single-block
``linear1`` is those three plus ``proj_mlp``; a final modulation may store shift before scale where diffusers
stores scale before shift. A LoRA on a fused layer is exact on its parts: its ``up`` matrix is split by the same
rows (``delta[rows] = up[rows] @ down``). The row sizes are read from the live model's modules, so any model size
works (diffusers' own converters hard-code Flux.1's 3072/12288).

A family's table (``Family.original_names``, in its folder's ``names.py``) takes the live denoiser and returns
original name -> diffusers name, or -> ``RowSplit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

Rows = tuple[tuple[int, int], ...]  # row ranges of the fused output, concatenated in this order


@dataclass(frozen=True)
class RowSplit:
    """A fused original layer: its output rows, in order, are these diffusers modules' rows."""

    parts: tuple[tuple[str, Rows], ...]  # (diffusers module name, its rows in the fused layer)

    @property
    def rows(self) -> int:
        return sum(b - a for _, ranges in self.parts for a, b in ranges)


def _out(model: torch.nn.Module, name: str) -> int | None:
    try:
        module = model.get_submodule(name)
    except AttributeError:
        return None
    module = getattr(module, "base_layer", module)  # a peft wrapper counts as its base layer
    return getattr(module, "out_features", getattr(module, "out_channels", None))


def stacked(model: torch.nn.Module, names: tuple[str, ...]) -> RowSplit | None:
    """``names`` stacked by rows, in order (None if the model lacks one of them)."""
    sizes = [_out(model, n) for n in names]
    if None in sizes:
        return None
    parts, start = [], 0
    for name, size in zip(names, sizes, strict=True):
        parts.append((name, ((start, start + size),)))
        start += size
    return RowSplit(tuple(parts))


def swapped_halves(model: torch.nn.Module, name: str) -> RowSplit | None:
    """Original shift-then-scale rows for a diffusers scale-then-shift layer."""
    size = _out(model, name)
    if size is None or size % 2:
        return None
    half = size // 2
    return RowSplit(((name, ((half, size), (0, half))),))


def blocks(model: torch.nn.Module, attribute: str) -> range:
    return range(len(getattr(model, attribute, ())))


def add(table: dict, model, original: str, target) -> None:
    """Map ``original`` to a module name that exists in ``model``, or to a RowSplit (skipped when absent)."""
    if isinstance(target, str):
        if _out(model, target) is not None:
            table[original] = target
    elif target is not None:
        table[original] = target
