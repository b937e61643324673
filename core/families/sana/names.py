"""Sana's original (NVlabs) module names -> diffusers names: what Sana's own checkpoints, its training code and
ComfyUI_ExtraModels' Sana loader name.

Mirrors diffusers' ``convert_sana_transformer_to_diffusers`` (``loaders/single_file_utils.py``): a block's
self-attention ``attn.qkv`` is ``attn1.to_q/k/v`` stacked by rows and ``attn.proj`` is ``attn1.to_out.0``; its
cross-attention ``cross_attn.q_linear`` / ``kv_linear`` (k and v stacked by rows) / ``proj`` are ``attn2.to_q`` /
``to_k, to_v`` / ``to_out.0``; the Mix-FFN's ``mlp.inverted_conv.conv`` / ``depth_conv.conv`` / ``point_conv.conv``
are ``ff.conv_inverted`` / ``conv_depth`` / ``conv_point``; ``t_embedder.mlp.0/2``, ``t_block.1``,
``y_embedder.y_proj.fc1/fc2`` and ``final_layer.linear`` are the time embedder, its adaLN linear, the caption
projection and ``proj_out``. Row sizes come from the live model, so any Sana size works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.original_names import RowSplit, add, blocks, stacked

if TYPE_CHECKING:
    import torch

TOP = (("x_embedder.proj", "patch_embed.proj"), ("t_embedder.mlp.0", "time_embed.emb.timestep_embedder.linear_1"),
       ("t_embedder.mlp.2", "time_embed.emb.timestep_embedder.linear_2"), ("t_block.1", "time_embed.linear"),
       ("y_embedder.y_proj.fc1", "caption_projection.linear_1"),
       ("y_embedder.y_proj.fc2", "caption_projection.linear_2"), ("final_layer.linear", "proj_out"))
BLOCK = (("attn.proj", "attn1.to_out.0"), ("cross_attn.q_linear", "attn2.to_q"),
         ("cross_attn.proj", "attn2.to_out.0"), ("mlp.inverted_conv.conv", "ff.conv_inverted"),
         ("mlp.depth_conv.conv", "ff.conv_depth"), ("mlp.point_conv.conv", "ff.conv_point"))


def sana_names(model: torch.nn.Module) -> dict[str, str | RowSplit]:
    table: dict[str, str | RowSplit] = {}
    for original, target in TOP:
        add(table, model, original, target)
    for i in blocks(model, "transformer_blocks"):
        o, b = f"blocks.{i}.", f"transformer_blocks.{i}."
        for original, target in BLOCK:
            add(table, model, o + original, b + target)
        add(table, model, o + "attn.qkv", stacked(model, tuple(b + f"attn1.to_{x}" for x in "qkv")))
        add(table, model, o + "cross_attn.kv_linear", stacked(model, (b + "attn2.to_k", b + "attn2.to_v")))
    return table
