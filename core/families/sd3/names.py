"""SD3's original (SAI MMDiT) module names -> diffusers names (kohya and ComfyUI SD3 files use them).

Mirrors diffusers' ``convert_sd3_transformer_checkpoint_to_diffusers`` (``loaders/single_file_utils.py``): each
joint block's ``qkv`` are ``to_q/k/v`` (x) and ``add_q/k/v_proj`` (context) stacked by rows; the last block's
context modulation and ``final_layer.adaLN_modulation.1`` store diffusers' halves swapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.original_names import RowSplit, add, blocks, stacked, swapped_halves

if TYPE_CHECKING:
    import torch


def sd3_names(model: torch.nn.Module) -> dict[str, str | RowSplit]:
    table: dict[str, str | RowSplit] = {}
    for original, target in (("x_embedder.proj", "pos_embed.proj"), ("context_embedder", "context_embedder"),
                             ("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
                             ("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
                             ("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
                             ("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2"),
                             ("final_layer.linear", "proj_out")):
        add(table, model, original, target)
    add(table, model, "final_layer.adaLN_modulation.1", swapped_halves(model, "norm_out.linear"))
    last = len(getattr(model, "transformer_blocks", ())) - 1
    for i in blocks(model, "transformer_blocks"):
        j, b = f"joint_blocks.{i}.", f"transformer_blocks.{i}."
        for original, target in (("x_block.attn.proj", "attn.to_out.0"), ("context_block.attn.proj", "attn.to_add_out"),
                                 ("x_block.attn2.proj", "attn2.to_out.0"), ("x_block.mlp.fc1", "ff.net.0.proj"),
                                 ("x_block.mlp.fc2", "ff.net.2"), ("context_block.mlp.fc1", "ff_context.net.0.proj"),
                                 ("context_block.mlp.fc2", "ff_context.net.2"),
                                 ("x_block.adaLN_modulation.1", "norm1.linear")):
            add(table, model, j + original, b + target)
        add(table, model, j + "x_block.attn.qkv", stacked(model, tuple(b + f"attn.to_{x}" for x in "qkv")))
        add(table, model, j + "x_block.attn2.qkv", stacked(model, tuple(b + f"attn2.to_{x}" for x in "qkv")))
        add(table, model, j + "context_block.attn.qkv", stacked(model, tuple(b + f"attn.add_{x}_proj" for x in "qkv")))
        context_norm = b + "norm1_context.linear"  # the last block's is the continuous (scale, shift) kind
        add(table, model, j + "context_block.adaLN_modulation.1",
             swapped_halves(model, context_norm) if i == last else context_norm)
    return table
