"""FLUX.2's original (BFL) module names -> diffusers names (musubi-tuner, ai-toolkit, ComfyUI and fal files use them).

Mirrors diffusers' ``convert_flux2_transformer_checkpoint_to_diffusers`` (``loaders/single_file_utils.py``):
each double block's fused ``qkv`` is ``to_q/k/v`` (image) or ``add_q/k/v_proj`` (text) stacked by rows, and
``final_layer.adaLN_modulation.1`` stores diffusers' ``norm_out.linear`` halves swapped (shift, scale). Unlike
FLUX.1, diffusers keeps the single blocks fused (``linear1`` is ``attn.to_qkv_mlp_proj``, ``linear2`` is
``attn.to_out``), the MLPs are SwiGLU (``ff.linear_in`` / ``linear_out``) and the modulation layers are shared by
all blocks (``double_stream_modulation_img/txt``, ``single_stream_modulation``). diffusers' own fused projections
(``attn.to_qkv``, ``attn.to_added_qkv``: what its ``fuse_qkv_projections`` makes, and the names its LoKr
converter writes) map onto the same rows. Row sizes come from the live model, so klein 4B/9B and dev all work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.original_names import RowSplit, add, blocks, stacked, swapped_halves

if TYPE_CHECKING:
    import torch

TOP = (("img_in", "x_embedder"), ("txt_in", "context_embedder"),
       ("time_in.in_layer", "time_guidance_embed.timestep_embedder.linear_1"),
       ("time_in.out_layer", "time_guidance_embed.timestep_embedder.linear_2"),
       ("guidance_in.in_layer", "time_guidance_embed.guidance_embedder.linear_1"),
       ("guidance_in.out_layer", "time_guidance_embed.guidance_embedder.linear_2"),
       ("double_stream_modulation_img.lin", "double_stream_modulation_img.linear"),
       ("double_stream_modulation_txt.lin", "double_stream_modulation_txt.linear"),
       ("single_stream_modulation.lin", "single_stream_modulation.linear"),
       ("final_layer.linear", "proj_out"))
DOUBLE = (("img_attn.proj", "attn.to_out.0"), ("txt_attn.proj", "attn.to_add_out"),
          ("img_mlp.0", "ff.linear_in"), ("img_mlp.2", "ff.linear_out"),
          ("txt_mlp.0", "ff_context.linear_in"), ("txt_mlp.2", "ff_context.linear_out"))
SINGLE = (("linear1", "attn.to_qkv_mlp_proj"), ("linear2", "attn.to_out"))
# RMSNorms of q and k (BFL keeps their weight as ``scale``): whole-parameter differences name these modules
DOUBLE_NORMS = (("img_attn.norm.query_norm", "attn.norm_q"), ("img_attn.norm.key_norm", "attn.norm_k"),
                ("txt_attn.norm.query_norm", "attn.norm_added_q"), ("txt_attn.norm.key_norm", "attn.norm_added_k"))
SINGLE_NORMS = (("norm.query_norm", "attn.norm_q"), ("norm.key_norm", "attn.norm_k"))


def _norm(table: dict, model, original: str, target: str) -> None:
    try:
        model.get_submodule(target)
    except AttributeError:
        return
    table[original] = target


def flux2_names(model: torch.nn.Module) -> dict[str, str | RowSplit]:
    table: dict[str, str | RowSplit] = {}
    for original, target in TOP:
        add(table, model, original, target)
    add(table, model, "final_layer.adaLN_modulation.1", swapped_halves(model, "norm_out.linear"))
    for i in blocks(model, "transformer_blocks"):
        d, b = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        for original, target in DOUBLE:
            add(table, model, d + original, b + target)
        image = stacked(model, tuple(b + f"attn.to_{x}" for x in "qkv"))
        text = stacked(model, tuple(b + f"attn.add_{x}_proj" for x in "qkv"))
        add(table, model, d + "img_attn.qkv", image)
        add(table, model, d + "txt_attn.qkv", text)
        add(table, model, b + "attn.to_qkv", image)  # diffusers' fused names (a real fused layer wins)
        add(table, model, b + "attn.to_added_qkv", text)
        for original, target in DOUBLE_NORMS:
            _norm(table, model, d + original, b + target)
    for i in blocks(model, "single_transformer_blocks"):
        for original, target in SINGLE:
            add(table, model, f"single_blocks.{i}.{original}", f"single_transformer_blocks.{i}.{target}")
        for original, target in SINGLE_NORMS:
            _norm(table, model, f"single_blocks.{i}.{original}", f"single_transformer_blocks.{i}.{target}")
    return table
