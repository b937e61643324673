"""Bria FIBO: a FLUX.1-style MMDiT (``BriaFiboTransformer2DModel``: joint blocks, then single blocks, fed every
SmolLM3 layer through its caption projections) with a SmolLM3 text encoder and Wan 2.2's VAE (16x).

diffusers loads its LoRAs with FLUX.1's loader: the transformer and the text encoder. Its blocks have FLUX.1's
module names (and, on the real model, its widths): a FIBO LoRA on attention only reads as a FLUX.1 one, so it is
registered before Flux, and its caption projections are its own marker. No single files, no original-name table.
Prompts are JSON captions on the real model (any text runs).
"""

from ...generation.calls import diffusers_call
from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import tiny

FAMILY = Family(
    key="briafibo", title="Bria FIBO", pipeline_classes=("BriaFiboPipeline",), denoiser="transformer",
    text_encoders=("text_encoder",),
    kohya_prefixes=(("lora_unet_", "transformer"), ("lora_te_", "text_encoder"), ("lora_te1_", "text_encoder")),
    tiny=tiny.build, builtin="tiny-briafibo", blocks=RANGES, schedulers={}, call=diffusers_call,
    single_files=(), original_names=None,
    lora_markers=(("caption_projection", "Bria FIBO"),),
    patch=2,
)
