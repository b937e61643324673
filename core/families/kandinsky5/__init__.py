"""Kandinsky 5.0 Image (text-to-image): a DiT (``Kandinsky5Transformer3DModel``: text blocks, then visual blocks
with cross-attention) conditioned on Qwen2.5-VL and a CLIP-L pooled embedding.

diffusers' loader takes the transformer only. Its pipeline renders at the nearest of its trained sizes
(``resolutions``, 1024 px and up, a pipeline attribute) and returns its pictures as ``image``. Kandinsky5I2IPipeline
is not this model's img2img: it runs the image-editing model (a transformer with a visual condition), so this row
is text-to-image only; the model's own scheduler only.

Split files (ComfyUI's layout: the denoiser in diffusion_models/, Qwen2.5-VL-7B and CLIP-L in text_encoders/, the
FLUX.1 VAE in vae/; bf16, fp8, scaled fp8 or GGUF): ``single_file.py``. Kandinsky Lab's and ComfyUI's module names are
diffusers' own, so there is no original-name table: a quantized Linear stays quantized on the Linear of its name.
"""

from ...generation.calls import diffusers_call
from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import single_file, tiny

FAMILY = Family(
    key="kandinsky5", title="Kandinsky 5", pipeline_classes=("Kandinsky5T2IPipeline",), denoiser="transformer",
    text_encoders=("text_encoder", "text_encoder_2"), kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-kandinsky5", blocks=RANGES, schedulers={}, call=diffusers_call,
    single_files=single_file.ARCHS, other_variants=single_file.OTHER_VARIANTS, original_names=None,
    lora_markers=(("visual_transformer_blocks", "Kandinsky 5"), ("text_transformer_blocks", "Kandinsky 5")),
    patch=2, pipeline_attributes=("resolutions",),
)
