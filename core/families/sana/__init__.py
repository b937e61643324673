"""Sana: a linear-attention DiT (``SanaTransformer2DModel``) with a Gemma 2 text encoder and a deep-compression
autoencoder (``AutoencoderDC``, 32x).

diffusers' loader takes the transformer only. Its own scheduler is DPM-Solver++ on flow sigmas (shift
``flow_shift``); the table's schedulers take that shift too. No single files, no original-name table.
"""

from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import tiny
from .generate import call
from .schedulers import SCHEDULERS

FAMILY = Family(
    key="sana", title="Sana", pipeline_classes=("SanaPipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-sana", blocks=RANGES, schedulers=SCHEDULERS, call=call,
    single_files=(), original_names=None,
    # its Mix-FFN (GLUMBConv) layers; its attention is attn1 / attn2 under transformer_blocks, as in UNets
    lora_markers=(("conv_inverted", "Sana"), ("conv_point", "Sana"), ("conv_depth", "Sana")),
    patch="patch_size",
)
