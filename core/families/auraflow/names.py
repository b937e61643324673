"""AuraFlow's original module names (fal's ``aura_flow_*.safetensors``, ComfyUI's ``comfy/ldm/aura/mmdit.py``) ->
diffusers names.

Mirrors diffusers' ``convert_auraflow_transformer_checkpoint_to_diffusers``: every original Linear is one diffusers
Linear of the same shape, renamed (``double_layers.N.attn.w2q`` -> ``joint_transformer_blocks.N.attn.to_q``: the
``w2*`` layers are the image stream, ``w1*`` the text stream), except the final modulation ``modF.1``, whose shift and
scale halves diffusers stores swapped (``norm_out.linear``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.original_names import RowSplit, add, blocks, swapped_halves

if TYPE_CHECKING:
    import torch

TOP = (("t_embedder.mlp.0", "time_step_proj.linear_1"), ("t_embedder.mlp.2", "time_step_proj.linear_2"),
       ("cond_seq_linear", "context_embedder"), ("init_x_linear", "pos_embed.proj"), ("final_linear", "proj_out"))
MLP = (("c_fc1", "linear_1"), ("c_fc2", "linear_2"), ("c_proj", "out_projection"))
DOUBLE = (("attn.w2q", "attn.to_q"), ("attn.w2k", "attn.to_k"), ("attn.w2v", "attn.to_v"),
          ("attn.w2o", "attn.to_out.0"),
          ("attn.w1q", "attn.add_q_proj"), ("attn.w1k", "attn.add_k_proj"), ("attn.w1v", "attn.add_v_proj"),
          ("attn.w1o", "attn.to_add_out"), ("modX.1", "norm1.linear"), ("modC.1", "norm1_context.linear"),
          *((f"mlpX.{a}", f"ff.{b}") for a, b in MLP), *((f"mlpC.{a}", f"ff_context.{b}") for a, b in MLP))
SINGLE = (("attn.w1q", "attn.to_q"), ("attn.w1k", "attn.to_k"), ("attn.w1v", "attn.to_v"),
          ("attn.w1o", "attn.to_out.0"),
          ("modCX.1", "norm1.linear"), *((f"mlp.{a}", f"ff.{b}") for a, b in MLP))


def auraflow_names(model: torch.nn.Module) -> dict[str, str | RowSplit]:
    table: dict[str, str | RowSplit] = {}
    for original, target in TOP:
        add(table, model, original, target)
    add(table, model, "modF.1", swapped_halves(model, "norm_out.linear"))
    for i in blocks(model, "joint_transformer_blocks"):
        for original, target in DOUBLE:
            add(table, model, f"double_layers.{i}.{original}", f"joint_transformer_blocks.{i}.{target}")
    for i in blocks(model, "single_transformer_blocks"):
        for original, target in SINGLE:
            add(table, model, f"single_layers.{i}.{original}", f"single_transformer_blocks.{i}.{target}")
    return table
