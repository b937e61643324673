"""Krea 2's original module names (krea-ai/krea-2 ``SingleStreamDiT``; ComfyUI, musubi-tuner, ai-toolkit and
DiffSynth-Studio files use them) -> diffusers names.

Mirrors diffusers' ``convert_krea2_transformer_checkpoint_to_diffusers``: every LoRA-able original Linear is one
diffusers Linear of the same shape (nothing fused, no rows swapped), only renamed. Inside a block ``attn.gate`` is
the attention's output gate (``attn.to_gate``) and ``mlp.gate`` the SwiGLU gate (``ff.gate``): the full names tell
them apart. The text-fusion transformer (``txtfusion``) sits inside the denoiser with block lists of its own.

musubi-tuner's ``convert_lora.py`` turns every ``_`` of a flattened name back into ``.``, which writes the text
fusion's blocks as ``txtfusion.layerwise.blocks.N`` / ``txtfusion.refiner.blocks.N``: no module has those names and
nothing else could be meant, so they are read as the blocks they were converted from (the trainer's own merge of
the source file is what such a file then applies; ComfyUI skips those modules).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.original_names import RowSplit, add, blocks

if TYPE_CHECKING:
    import torch

TOP = (("first", "img_in"), ("tmlp.0", "time_embed.linear_1"), ("tmlp.2", "time_embed.linear_2"),
       ("tproj.1", "time_mod_proj"), ("txtmlp.1", "txt_in.linear_1"), ("txtmlp.3", "txt_in.linear_2"),
       ("txtfusion.projector", "text_fusion.projector"), ("last.linear", "final_layer.linear"))
IN_BLOCK = (("attn.wq", "attn.to_q"), ("attn.wk", "attn.to_k"), ("attn.wv", "attn.to_v"),
            ("attn.gate", "attn.to_gate"), ("attn.wo", "attn.to_out.0"), ("mlp.gate", "ff.gate"),
            ("mlp.up", "ff.up"), ("mlp.down", "ff.down"))
# original block list -> diffusers block list; the text fusion's also under musubi's converted spelling
BLOCK_LISTS = (("blocks", "transformer_blocks", ()),
               ("txtfusion.layerwise_blocks", "text_fusion.layerwise_blocks", ("txtfusion.layerwise.blocks",)),
               ("txtfusion.refiner_blocks", "text_fusion.refiner_blocks", ("txtfusion.refiner.blocks",)))


def krea2_names(model: torch.nn.Module) -> dict[str, str | RowSplit]:
    table: dict[str, str | RowSplit] = {}
    for original, target in TOP:
        add(table, model, original, target)
    for original, target, converted in BLOCK_LISTS:
        owner, _, attribute = target.rpartition(".")
        lists = model.get_submodule(owner) if owner else model
        for i in blocks(lists, attribute):
            for inner, name in IN_BLOCK:
                for spelling in (original, *converted):
                    add(table, model, f"{spelling}.{i}.{inner}", f"{target}.{i}.{name}")
    return table
