"""Flux's original (BFL) module names -> diffusers names (kohya, ComfyUI, XLabs and most civitai files use them).

Mirrors diffusers' ``convert_flux_transformer_checkpoint_to_diffusers`` (``loaders/single_file_utils.py``): the
double blocks' ``qkv`` are ``to_q/k/v`` (image) and ``add_q/k/v_proj`` (text) stacked by rows, the single
blocks' ``linear1`` is ``to_q/k/v`` + ``proj_mlp``, and ``final_layer.adaLN_modulation.1`` stores diffusers'
``norm_out.linear`` halves swapped. Row sizes come from the live model, so any Flux size works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.original_names import RowSplit, add, blocks, stacked, swapped_halves

if TYPE_CHECKING:
    import torch


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
        add(table, model, original, target)
    add(table, model, "final_layer.adaLN_modulation.1", swapped_halves(model, "norm_out.linear"))
    for i in blocks(model, "transformer_blocks"):
        d, b = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        for original, target in (("img_mod.lin", "norm1.linear"), ("txt_mod.lin", "norm1_context.linear"),
                                 ("img_attn.proj", "attn.to_out.0"), ("txt_attn.proj", "attn.to_add_out"),
                                 ("img_mlp.0", "ff.net.0.proj"), ("img_mlp.2", "ff.net.2"),
                                 ("txt_mlp.0", "ff_context.net.0.proj"), ("txt_mlp.2", "ff_context.net.2")):
            add(table, model, d + original, b + target)
        add(table, model, d + "img_attn.qkv", stacked(model, tuple(b + f"attn.to_{x}" for x in "qkv")))
        add(table, model, d + "txt_attn.qkv", stacked(model, tuple(b + f"attn.add_{x}_proj" for x in "qkv")))
    for i in blocks(model, "single_transformer_blocks"):
        s, b = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        qkv = tuple(b + f"attn.to_{x}" for x in "qkv")
        add(table, model, s + "linear1", stacked(model, (*qkv, b + "proj_mlp")))
        add(table, model, s + "linear1_qkv", stacked(model, qkv))  # XLabs' LoRA on the attention rows only
        add(table, model, s + "linear2", b + "proj_out")
        add(table, model, s + "modulation.lin", b + "norm.linear")
    return table
