"""Chroma single-file checkpoints (lodestones' / ComfyUI's layout: FLUX.1's block names, no modulation layers,
the ``distilled_guidance_layer`` approximator) and how their weights reach diffusers' converter.

Chroma1-HD, Chroma1-Base and Chroma1-Flash (and the chroma-unlocked-vNN checkpoints before them) are one
architecture; nothing in their keys tells them apart, and one config folder serves them all. They ship as
transformer-only files (ComfyUI's models/diffusion_models), optionally ``model.diffusion_model.``-prefixed, with
the T5-XXL encoder and FLUX.1's VAE (``ae.safetensors``) as separate files; an all-in-one file keeps them under
ComfyUI's ``text_encoders.t5xxl.transformer.`` / ``vae.`` names. Config folders: ``configs/<key>/`` (sources in
core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import T5_PREFIX, UNET_PREFIX, Arch, Encoder
from ..flux.single_file import FLUX1_WIDTH

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
_PARTS = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")


def state_dict(tensors: dict, config: dict) -> dict:
    """Original Chroma keys -> diffusers keys by diffusers' own converter, which hard-codes FLUX.1's width (3072)
    when it splits ``single_blocks.N.linear1`` into q, k, v and mlp (as Flux's does); for other widths (the tiny
    model) it gets placeholders of that size and the real tensors are split here by the model's width."""
    import torch
    from diffusers.loaders.single_file_utils import convert_chroma_transformer_checkpoint_to_diffusers

    inner = config["num_attention_heads"] * config["attention_head_dim"]
    if inner == FLUX1_WIDTH:
        return tensors
    real = {k: v for k, v in tensors.items() if ".linear1." in k and "single_blocks." in k}
    fake = {k: torch.empty((7 * FLUX1_WIDTH, *v.shape[1:]), device="meta") for k, v in real.items()}
    converted = convert_chroma_transformer_checkpoint_to_diffusers({**tensors, **fake})  # it pops from its input
    for key, tensor in real.items():
        block, kind = key.removeprefix(UNET_PREFIX).split(".")[1], key.rsplit(".", 1)[1]
        for name, part in zip(_PARTS, torch.split(tensor, (inner, inner, inner, tensor.shape[0] - 3 * inner)),
                              strict=True):
            converted[f"single_transformer_blocks.{block}.{name}.{kind}"] = part.clone()
    return converted


_T5 = (Encoder("text_encoder", "t5xxl", (T5_PREFIX,)),)
_QKV = "double_blocks.0.img_attn.qkv.weight"
_APPROXIMATOR = "distilled_guidance_layer.in_proj.weight"
_FILES = {"configs": CONFIGS, "vae_file": "ae.safetensors (FLUX.1's VAE)", "prepare": state_dict}

ARCHS = (
    Arch("chroma1-hd", "Chroma1 (HD / Base / Flash)",
         ((_QKV, (9216, 3072)), ("img_in.weight", (3072, 64)), (_APPROXIMATOR, (5120, 64))), _T5, **_FILES),
    Arch("tiny-chroma", "tiny Chroma (built-in)",
         ((_QKV, (96, 32)), ("img_in.weight", (32, 4)), (_APPROXIMATOR, (32, 16))), _T5, tiny=True, **_FILES),
)
OTHER_VARIANTS = (
    ("nerf_blocks.0.norm.scale", None, "Chroma1-Radiance (pixel space; diffusers has no pipeline for it)"),
    ("distilled_guidance_layer.in_proj.bias", None,
     "a Chroma model of a size LoRA Deck has no config for (it loads Chroma1-HD, Base and Flash)"),
)
