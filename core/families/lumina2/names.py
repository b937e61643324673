"""Lumina 2's original module names (Alpha-VLLM's ``NextDiT``, which ComfyUI's ``comfy/ldm/lumina/model.py`` keeps)
-> diffusers' ``Lumina2Transformer2DModel`` names.

ComfyUI's ``lumina_2_model_bf16.safetensors`` (and the LoRAs made on that model) name each block's attention one
fused ``attention.qkv`` (``to_q``, ``to_k``, ``to_v`` stacked by rows; grouped-query attention, so k and v have the
KV heads' rows) and ``attention.out``, its SwiGLU ``feed_forward.w1/w2/w3``, its modulation ``adaLN_modulation.1``;
the embedders are ``t_embedder.mlp.0/2`` and ``cap_embedder.0/1``, the output ``final_layer``. Mirrors diffusers'
``convert_lumina2_to_diffusers`` (``loaders/single_file_utils.py``), with the row sizes read from the live model
(diffusers' converter hard-codes Lumina Image 2.0's 2304 / 768 / 768).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.original_names import RowSplit, add, blocks, stacked

if TYPE_CHECKING:
    import torch

BLOCK_LISTS = ("layers", "noise_refiner", "context_refiner")
TOP = (("t_embedder.mlp.0", "time_caption_embed.timestep_embedder.linear_1"),
       ("t_embedder.mlp.2", "time_caption_embed.timestep_embedder.linear_2"),
       ("cap_embedder.1", "time_caption_embed.caption_embedder.1"),
       ("final_layer.adaLN_modulation.1", "norm_out.linear_1"), ("final_layer.linear", "norm_out.linear_2"))
BLOCK = (("attention.out", "attn.to_out.0"), ("feed_forward.w1", "feed_forward.linear_1"),
         ("feed_forward.w2", "feed_forward.linear_2"), ("feed_forward.w3", "feed_forward.linear_3"),
         ("adaLN_modulation.1", "norm1.linear"))
# RMSNorms: no LoRA pair fits them (ComfyUI's extraction writes their weight differences)
NORMS = (("attention.q_norm", "attn.norm_q"), ("attention.k_norm", "attn.norm_k"))


def lumina2_names(model: torch.nn.Module) -> dict[str, str | RowSplit]:
    table: dict[str, str | RowSplit] = {}
    for original, target in TOP:
        add(table, model, original, target)
    for group in BLOCK_LISTS:
        for i in blocks(model, group):
            b = f"{group}.{i}."
            add(table, model, b + "attention.qkv", stacked(model, tuple(f"{b}attn.to_{x}" for x in "qkv")))
            for original, target in BLOCK:
                add(table, model, b + original, b + target)
            for original, target in NORMS:
                if getattr(model.get_submodule(b + target.rpartition(".")[0]), target.rpartition(".")[2],
                           None) is not None:
                    table[b + original] = b + target
    return table
