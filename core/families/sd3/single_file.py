"""SD3 / SD3.5 single-file checkpoints (SAI MMDiT layout, ComfyUI's text_encoders.* names).

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import CLIP_L, T5_PREFIX, Arch, Encoder

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

_SD3_TE = (CLIP_L, Encoder("text_encoder_2", "clip_g", ("text_encoders.clip_g.transformer.",)),
           Encoder("text_encoder_3", "t5xxl", (T5_PREFIX,), required=False))
_MMDIT = "joint_blocks.0.x_block.attn.qkv.weight"
_MMDIT_X = "joint_blocks.0.x_block.attn2.qkv.weight"

ARCHS = (
    Arch("sd35-large", "Stable Diffusion 3.5 Large", ((_MMDIT, (7296, 2432)),), _SD3_TE, CONFIGS),
    Arch("sd35-medium", "Stable Diffusion 3.5 Medium",
         ((_MMDIT, (4608, 1536)), (_MMDIT_X, (4608, 1536)), ("pos_embed", (1, 147456, 1536))), _SD3_TE, CONFIGS),
    Arch("sd3-medium", "Stable Diffusion 3 Medium", ((_MMDIT, (4608, 1536)), ("pos_embed", (1, 36864, 1536))),
         _SD3_TE, CONFIGS, absent=(_MMDIT_X,)),
    Arch("tiny-sd3", "tiny SD3 (built-in)", ((_MMDIT, (96, 32)), ("pos_embed", (1, 9216, 32))), _SD3_TE, CONFIGS,
         tiny=True),
)
