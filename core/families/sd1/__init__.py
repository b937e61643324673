"""Stable Diffusion 1.x / 2.x: a UNet and one CLIP text encoder (OpenCLIP-H on 2.x)."""

from ...generation.calls import diffusers_call
from ...models.family import Family
from ...models.schedulers import EPSILON
from . import single_file, tiny
from .blocks import LBW_SD1, UNET
from .unet_names import aliases

FAMILY = Family(
    key="sd1", title="Stable Diffusion 1.x/2.x", pipeline_classes=("StableDiffusionPipeline",), denoiser="unet",
    text_encoders=("text_encoder",),
    kohya_prefixes=(("lora_unet_", "unet"), ("lora_te_", "text_encoder"), ("lora_te1_", "text_encoder")),
    tiny=tiny.build, builtin="tiny-sd", blocks=UNET, schedulers=EPSILON, call=diffusers_call,
    single_files=single_file.ARCHS, original_names=None,
    # its UNet keys are SDXL's too (the generic UNet markers of base_guess); the widths tell them apart
    lora_markers=(), lora_widths={"cross-attention width": {768: "SD 1.x", 1024: "SD 2.x"},
                                  "text-encoder width": {768: "SD 1.x", 1024: "SD 2.x"}},
    lbw=LBW_SD1, aliases=aliases, other_variants=single_file.OTHER_VARIANTS,
    img2img="StableDiffusionImg2ImgPipeline", inpaint="StableDiffusionInpaintPipeline",
)
