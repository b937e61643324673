"""FLUX.1 single-file checkpoints (BFL layout, ComfyUI's text_encoders.* names) and how their weights reach
diffusers' converter.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import CLIP_L, T5_PREFIX, UNET_PREFIX, Arch, Encoder

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
FLUX1_WIDTH = 3072  # diffusers' Flux converter splits single_blocks.N.linear1 with FLUX.1's fixed sizes


def state_dict(tensors: dict, config: dict) -> dict:
    """Original Flux keys -> diffusers keys by diffusers' own converter. It hard-codes FLUX.1's width (3072) when
    it splits ``single_blocks.N.linear1`` into q, k, v and mlp; for other widths (the tiny model) it gets
    placeholders of FLUX.1's size for those tensors and the real ones are split here by the model's width."""
    import torch
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    inner = config["num_attention_heads"] * config["attention_head_dim"]
    if inner == FLUX1_WIDTH:
        return tensors
    real = {k: v for k, v in tensors.items() if ".linear1." in k and "single_blocks." in k}
    fake = {k: torch.empty((3 * FLUX1_WIDTH + 4 * FLUX1_WIDTH, *v.shape[1:]), device="meta") for k, v in real.items()}
    converted = convert_flux_transformer_checkpoint_to_diffusers({**tensors, **fake})
    for key, tensor in real.items():
        block, kind = key.removeprefix(UNET_PREFIX).split(".")[1], key.rsplit(".", 1)[1]
        parts = torch.split(tensor, (inner, inner, inner, tensor.shape[0] - 3 * inner))
        for name, part in zip(("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), parts, strict=True):
            converted[f"single_transformer_blocks.{block}.{name}.{kind}"] = part.clone()
    return converted



_FLUX_TE = (CLIP_L, Encoder("text_encoder_2", "t5xxl", (T5_PREFIX,)))
_FLUX = "double_blocks.0.img_attn.qkv.weight"
_GUIDANCE = "guidance_in.in_layer.weight"
_FLUX_FILES = {"configs": CONFIGS, "vae_file": "ae.safetensors", "prepare": state_dict}

ARCHS = (
    Arch("flux-dev", "FLUX.1 dev", ((_FLUX, (9216, 3072)), ("img_in.weight", (3072, 64)), (_GUIDANCE, None)),
         _FLUX_TE, **_FLUX_FILES),
    Arch("flux-schnell", "FLUX.1 schnell", ((_FLUX, (9216, 3072)), ("img_in.weight", (3072, 64))), _FLUX_TE,
         absent=(_GUIDANCE,), **_FLUX_FILES),
    Arch("tiny-flux", "tiny Flux (built-in)", ((_FLUX, (96, 32)), ("img_in.weight", (32, 4))), _FLUX_TE, tiny=True,
         **_FLUX_FILES),
)
OTHER_VARIANTS = (("img_in.weight", lambda s: s[-1] in (128, 384), "a FLUX.1 Fill or Depth model"),)
