"""SDXL single-file checkpoints (SGM layout): which rows detect them and where their two CLIP encoders are.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import Arch, Encoder

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

_SDXL_TE = (Encoder("text_encoder", "clip_l", ("conditioner.embedders.0.transformer.",)),
            Encoder("text_encoder_2", "clip_g", ("conditioner.embedders.1.model.",)))
_XL_ATTN = "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"

ARCHS = (
    Arch("sdxl-base", "Stable Diffusion XL base",
         ((_XL_ATTN, (640, 2048)), ("label_emb.0.0.weight", (1280, 2816)), ("input_blocks.0.0.weight", (320, 4, 3, 3))),
         _SDXL_TE, CONFIGS),
    Arch("tiny-sdxl", "tiny SDXL (built-in)",
         ((_XL_ATTN, (32, 64)), ("label_emb.0.0.weight", (64, 80)), ("input_blocks.0.0.weight", (16, 4, 3, 3))),
         _SDXL_TE, CONFIGS, tiny=True),
)
OTHER_VARIANTS = ((_XL_ATTN, lambda s: s[-1] == 1280, "the SDXL refiner"),)
