"""Stable Diffusion XL: an SD-style UNet (the SD 1.x folder's block names and scheme) and two CLIP encoders."""

from ...generation.calls import diffusers_call
from ...models.family import Family
from ...models.schedulers import EPSILON
from ..sd1.blocks import UNET
from ..sd1.unet_names import aliases
from . import single_file, tiny

# A1111 / LoRA Block Weight vectors: block ids in order, per vector length.
LBW_SDXL = {
    12: ("BASE", "IN04", "IN05", "IN07", "IN08", "M00", "OUT00", "OUT01", "OUT02", "OUT03", "OUT04", "OUT05"),
    20: ("BASE", *(f"IN{i:02d}" for i in range(9)), "M00", *(f"OUT{i:02d}" for i in range(9))),
}

FAMILY = Family(
    key="sdxl", title="Stable Diffusion XL", pipeline_classes=("StableDiffusionXLPipeline",), denoiser="unet",
    text_encoders=("text_encoder", "text_encoder_2"),
    kohya_prefixes=(("lora_unet_", "unet"), ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2")),
    tiny=tiny.build, builtin="tiny-sdxl", blocks=UNET, schedulers=EPSILON, call=diffusers_call,
    single_files=single_file.ARCHS, original_names=None,
    lora_markers=(), encoder_markers=(("lora_te2_", "SDXL"), ("text_encoder_2.", "SDXL")),
    lora_widths={"cross-attention width": {2048: "SDXL"}, "text-encoder width": {1280: "SDXL"}},
    lbw=LBW_SDXL, aliases=aliases, other_variants=single_file.OTHER_VARIANTS,
    img2img="StableDiffusionXLImg2ImgPipeline", inpaint="StableDiffusionXLInpaintPipeline",
)
