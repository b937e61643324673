"""Z-Image's original module names (ComfyUI's Lumina 2 ``NextDiT``) -> diffusers names.

ComfyUI's checkpoints (``z_image_turbo_bf16.safetensors``) and the LoRAs made on that model (diffusion-pipe,
ComfyUI's "Extract and Save Lora", musubi-tuner's ComfyUI conversion) name the denoiser as ComfyUI builds it: each
block's attention is one fused ``attention.qkv`` (``to_q``, ``to_k``, ``to_v`` stacked by rows) and
``attention.out`` (its query/key norms ``q_norm``/``k_norm``); the patch embedder and the final layer have no
patch-size key. Mirrors diffusers'
``convert_z_image_transformer_checkpoint_to_diffusers`` (``loaders/single_file_utils.py``); row sizes come from the
live model. Everything else (``layers.N.feed_forward.w1``, ``adaLN_modulation.0``, ``t_embedder.mlp.0``,
``cap_embedder.1``, the refiners) has the same name in both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.original_names import RowSplit, add, blocks, stacked

if TYPE_CHECKING:
    import torch

BLOCK_LISTS = ("layers", "noise_refiner", "context_refiner")
# ComfyUI names the Qwen3-4B text encoder's modules qwen3_4b.transformer.model.<transformers name> (its generic LoRA
# keys: text_encoders. + that); Qwen3ForCausalLM-based tools name them model.<transformers name>
TEXT_ENCODER_PREFIXES = ("text_encoders.qwen3_4b.transformer.model.", "model.")


def zimage_names(model: torch.nn.Module) -> dict[str, str | RowSplit]:
    table: dict[str, str | RowSplit] = {}
    # the (only) patch size's embedder and final layer: "2-1" on every released model
    patch = next(iter(getattr(model, "all_x_embedder", {}) or {}), None)
    if patch is not None:
        for original, target in (("x_embedder", "all_x_embedder.{}"),
                                 ("final_layer.linear", "all_final_layer.{}.linear"),
                                 ("final_layer.adaLN_modulation.1", "all_final_layer.{}.adaLN_modulation.1")):
            add(table, model, original, target.format(patch))
    for group in BLOCK_LISTS:
        for i in blocks(model, group):
            b = f"{group}.{i}.attention."
            add(table, model, b + "qkv", stacked(model, tuple(b + f"to_{x}" for x in "qkv")))
            add(table, model, b + "out", b + "to_out.0")
            for original, target in (("q_norm", "norm_q"), ("k_norm", "norm_k")):  # RMSNorms: no LoRA pair fits
                if getattr(model.get_submodule(b[:-1]), target, None) is not None:
                    table[b + original] = b + target  # (ComfyUI's extraction writes their weight differences)
    return table


def aliases(family, component: str, model):
    """``Family.aliases``: the text encoder's modules also under ComfyUI's and Qwen3ForCausalLM's names."""
    if component not in family.text_encoders:
        return None
    return lambda name: tuple(prefix + name for prefix in TEXT_ENCODER_PREFIXES)
