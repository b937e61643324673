"""Wan's original (Wan-AI) module names -> diffusers names: what ComfyUI, musubi-tuner, LightX2V, Wan2.2-Lightning,
DiffSynth-Studio and ai-toolkit's saved files name.

Mirrors diffusers' ``convert_wan_transformer_to_diffusers`` (``loaders/single_file_utils.py``): ``self_attn`` /
``cross_attn`` are ``attn1`` / ``attn2`` with ``q/k/v/o`` as ``to_q/to_k/to_v/to_out.0``, the image keys ``k_img`` /
``v_img`` / ``norm_k_img`` (Wan 2.1 I2V) are ``add_k_proj`` / ``add_v_proj`` / ``norm_added_k``, ``ffn.0`` / ``ffn.2``
are ``ffn.net.0.proj`` / ``ffn.net.2``, and the one affine block norm is ``norm3`` in the original and ``norm2`` in
diffusers (the numbers are swapped). Wan has no fused layers, so nothing is split by rows. The modulation tables
are parameters, not modules: ``blocks.N.modulation`` is ``blocks.N.scale_shift_table`` and ``head.modulation`` the
model's own ``scale_shift_table`` (LightX2V's ``diff_m`` differences land there). Both Wan 2.2 experts use the
same names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.original_names import blocks

if TYPE_CHECKING:
    import torch

TOP = (("patch_embedding", "patch_embedding"), ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
       ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
       ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
       ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
       ("time_projection.1", "condition_embedder.time_proj"), ("head.head", "proj_out"),
       ("img_emb.proj.0", "condition_embedder.image_embedder.norm1"),
       ("img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"),
       ("img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"),
       ("img_emb.proj.4", "condition_embedder.image_embedder.norm2"))
BLOCK = (("self_attn.q", "attn1.to_q"), ("self_attn.k", "attn1.to_k"), ("self_attn.v", "attn1.to_v"),
         ("self_attn.o", "attn1.to_out.0"), ("self_attn.norm_q", "attn1.norm_q"), ("self_attn.norm_k", "attn1.norm_k"),
         ("cross_attn.q", "attn2.to_q"), ("cross_attn.k", "attn2.to_k"), ("cross_attn.v", "attn2.to_v"),
         ("cross_attn.o", "attn2.to_out.0"), ("cross_attn.norm_q", "attn2.norm_q"),
         ("cross_attn.norm_k", "attn2.norm_k"), ("cross_attn.k_img", "attn2.add_k_proj"),
         ("cross_attn.v_img", "attn2.add_v_proj"), ("cross_attn.norm_k_img", "attn2.norm_added_k"),
         ("norm3", "norm2"), ("ffn.0", "ffn.net.0.proj"), ("ffn.2", "ffn.net.2"))
# parameters that are not modules: original parameter path -> diffusers parameter path
PARAMETERS = (("head.modulation", "scale_shift_table"),)


def _has(model: torch.nn.Module, path: str, parameter: bool = False) -> bool:
    """Whether ``model`` has the module (or, with ``parameter``, the parameter) at ``path``; norms count too,
    which ``original_names.add`` (made for layers with output sizes) leaves out."""
    import torch

    module, _, name = path.rpartition(".") if parameter else (path, "", "")
    try:
        found = model.get_submodule(module) if module else model
    except AttributeError:
        return False
    return isinstance(getattr(found, name, None), torch.nn.Parameter) if parameter else True


def _add(table: dict, model: torch.nn.Module, original: str, target: str, parameter: bool = False) -> None:
    if _has(model, target, parameter):
        table[original] = target


def wan_names(model: torch.nn.Module) -> dict[str, str]:
    table: dict[str, str] = {}
    for original, target in TOP:
        _add(table, model, original, target)
    for original, target in PARAMETERS:
        _add(table, model, original, target, parameter=True)
    for i in blocks(model, "blocks"):
        for original, target in BLOCK:
            _add(table, model, f"blocks.{i}.{original}", f"blocks.{i}.{target}")
        _add(table, model, f"blocks.{i}.modulation", f"blocks.{i}.scale_shift_table", parameter=True)
    return table
