"""Lumina Image 2.0: a single-stream DiT (``Lumina2Transformer2DModel``: noise and context refiners, then the main
layers) and a Gemma 2 text encoder.

diffusers' loader takes the transformer only. Split files (ComfyUI's ``lumina_2_model_bf16.safetensors``, fp8, GGUF)
and ComfyUI's all-in-one checkpoint load through ``single_file.py``, their original names through ``names.py``. Its
pipeline passes custom sigmas, which FlowMatch Heun and diffusers' DPM solver do not take.
"""

from ...generation.calls import diffusers_call
from ...models.family import Family
from ...models.schedulers import FLOW_MATCH
from ...stacks.block_weights import RANGES
from . import single_file, tiny
from .names import lumina2_names

FAMILY = Family(
    key="lumina2", title="Lumina 2", pipeline_classes=("Lumina2Pipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-lumina2", blocks=RANGES,
    schedulers={name: FLOW_MATCH[name] for name in ("FlowMatch Euler", "UniPC")}, call=diffusers_call,
    single_files=single_file.ARCHS, original_names=lumina2_names, other_variants=single_file.OTHER_VARIANTS,
    # the refiners and adaLN names are Z-Image's too (Z-Image is a Lumina 2 descendant); its SwiGLU is its own
    lora_markers=(("feed_forward.linear_", "Lumina 2"), ("feed_forward_linear_", "Lumina 2")),
    patch="patch_size",
)
