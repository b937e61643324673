"""ERNIE-Image: a single-stream DiT (``ErnieImageTransformer2DModel``) over a Ministral 3 text encoder's features,
with FLUX.2's VAE; an optional prompt enhancer rewrites prompts.

diffusers' loader takes the transformer only. Generate runs without the prompt enhancer (the prompt as written).
Split files (``single_file.py``): the denoiser in diffusers' own names (no original-name table: ComfyUI's ERNIE
model uses them too), ComfyUI's Ministral 3 3B text encoder, the FLUX.2 VAE. The model's own scheduler only (its
pipeline passes custom sigmas).
"""

from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import single_file, tiny
from .generate import call

FAMILY = Family(
    key="ernieimage", title="ERNIE-Image", pipeline_classes=("ErnieImagePipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-ernieimage", blocks=RANGES, schedulers={}, call=call,
    single_files=single_file.ARCHS, other_variants=single_file.OTHER_VARIANTS, original_names=None,
    lora_markers=(("self_attention.to_out", "ERNIE-Image"), ("self_attention_to_out", "ERNIE-Image"),
                  ("linear_fc2", "ERNIE-Image")),
)
