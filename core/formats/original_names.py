"""The original (BFL / SAI) module names of Flux and SD3 transformers, as diffusers names.

kohya-ss sd-scripts, ComfyUI, XLabs and most civitai files name Flux and SD3 modules as the original
models do (``double_blocks.0.img_attn.qkv``, ``joint_blocks.0.x_block.attn.qkv``). Some of those are fused
layers diffusers keeps apart: ``qkv`` is ``to_q``, ``to_k`` and ``to_v`` stacked by rows, and Flux's single-block
``linear1`` is those three plus ``proj_mlp``; the final modulation stores shift before scale where diffusers
stores scale before shift. A LoRA on a fused layer is exact on its parts: its ``up`` matrix is split by the same
rows (``delta[rows] = up[rows] @ down``). The row sizes are read from the live model's modules, so any model size
works (diffusers' own converters hard-code Flux.1's 3072/12288).

Each builder takes the live transformer and returns original name -> diffusers name, or -> ``RowSplit``.
This mirrors diffusers' single-file converters (``convert_flux_transformer_checkpoint_to_diffusers``,
``convert_sd3_transformer_checkpoint_to_diffusers`` in ``diffusers/loaders/single_file_utils.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


def _blocks(model: torch.nn.Module, attribute: str) -> range:
    return range(len(getattr(model, attribute, ())))


def _add(table: dict, model, original: str, target) -> None:
    """Map ``original`` to a module name that exists in ``model``, or to a RowSplit (skipped when absent)."""
    if isinstance(target, str):
        if _out(model, target) is not None:
            table[original] = target
    elif target is not None:
        table[original] = target


def flux_names(model: torch.nn.Module) -> dict[str, str | RowSplit]:
    table: dict[str, str | RowSplit] = {}
    for original, target in (("img_in", "x_embedder"), ("txt_in", "context_embedder"),
                             ("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
                             ("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
                             ("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
                             ("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
                             ("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"),
                             ("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"),
                             ("final_layer.linear", "proj_out")):
        _add(table, model, original, target)
    _add(table, model, "final_layer.adaLN_modulation.1", swapped_halves(model, "norm_out.linear"))
    for i in _blocks(model, "transformer_blocks"):
        d, b = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        for original, target in (("img_mod.lin", "norm1.linear"), ("txt_mod.lin", "norm1_context.linear"),
                                 ("img_attn.proj", "attn.to_out.0"), ("txt_attn.proj", "attn.to_add_out"),
                                 ("img_mlp.0", "ff.net.0.proj"), ("img_mlp.2", "ff.net.2"),
                                 ("txt_mlp.0", "ff_context.net.0.proj"), ("txt_mlp.2", "ff_context.net.2")):
            _add(table, model, d + original, b + target)
        _add(table, model, d + "img_attn.qkv", stacked(model, tuple(b + f"attn.to_{x}" for x in "qkv")))
        _add(table, model, d + "txt_attn.qkv", stacked(model, tuple(b + f"attn.add_{x}_proj" for x in "qkv")))
    for i in _blocks(model, "single_transformer_blocks"):
        s, b = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        qkv = tuple(b + f"attn.to_{x}" for x in "qkv")
        _add(table, model, s + "linear1", stacked(model, (*qkv, b + "proj_mlp")))
        _add(table, model, s + "linear1_qkv", stacked(model, qkv))  # XLabs' LoRA on the attention rows only
        _add(table, model, s + "linear2", b + "proj_out")
        _add(table, model, s + "modulation.lin", b + "norm.linear")
    return table


def sd3_names(model: torch.nn.Module) -> dict[str, str | RowSplit]:
    table: dict[str, str | RowSplit] = {}
    for original, target in (("x_embedder.proj", "pos_embed.proj"), ("context_embedder", "context_embedder"),
                             ("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
                             ("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
                             ("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
                             ("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2"),
                             ("final_layer.linear", "proj_out")):
        _add(table, model, original, target)
    _add(table, model, "final_layer.adaLN_modulation.1", swapped_halves(model, "norm_out.linear"))
    last = len(getattr(model, "transformer_blocks", ())) - 1
    for i in _blocks(model, "transformer_blocks"):
        j, b = f"joint_blocks.{i}.", f"transformer_blocks.{i}."
        for original, target in (("x_block.attn.proj", "attn.to_out.0"), ("context_block.attn.proj", "attn.to_add_out"),
                                 ("x_block.attn2.proj", "attn2.to_out.0"), ("x_block.mlp.fc1", "ff.net.0.proj"),
                                 ("x_block.mlp.fc2", "ff.net.2"), ("context_block.mlp.fc1", "ff_context.net.0.proj"),
                                 ("context_block.mlp.fc2", "ff_context.net.2"),
                                 ("x_block.adaLN_modulation.1", "norm1.linear")):
            _add(table, model, j + original, b + target)
        _add(table, model, j + "x_block.attn.qkv", stacked(model, tuple(b + f"attn.to_{x}" for x in "qkv")))
        _add(table, model, j + "x_block.attn2.qkv", stacked(model, tuple(b + f"attn2.to_{x}" for x in "qkv")))
        _add(table, model, j + "context_block.attn.qkv", stacked(model, tuple(b + f"attn.add_{x}_proj" for x in "qkv")))
        context_norm = b + "norm1_context.linear"  # the last block's is the continuous (scale, shift) kind
        _add(table, model, j + "context_block.adaLN_modulation.1",
             swapped_halves(model, context_norm) if i == last else context_norm)
    return table


BUILDERS: dict[str, Callable[[torch.nn.Module], dict[str, str | RowSplit]]] = {"flux": flux_names, "sd3": sd3_names}
