"""Stable Diffusion 3 / 3.5: an MMDiT transformer, CLIP-L, CLIP-G and an optional T5."""

from ...generation.calls import diffusers_call
from ...models.family import Family
from ...models.schedulers import FLOW_MATCH
from ...stacks.block_weights import RANGES
from . import single_file, tiny
from .names import sd3_names

FAMILY = Family(
    key="sd3", title="Stable Diffusion 3", pipeline_classes=("StableDiffusion3Pipeline",), denoiser="transformer",
    text_encoders=("text_encoder", "text_encoder_2", "text_encoder_3"),
    kohya_prefixes=(("lora_unet_", "transformer"), ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2"),
                    ("lora_te3_", "text_encoder_3")),
    tiny=tiny.build, builtin="tiny-sd3", blocks=RANGES, schedulers=FLOW_MATCH, call=diffusers_call,
    single_files=single_file.ARCHS, original_names=sd3_names,
    lora_markers=(("joint_blocks", "SD 3"), ("context_block", "SD 3")),
    encoder_markers=(("text_encoder_3.", "SD 3"),),
    img2img="StableDiffusion3Img2ImgPipeline", inpaint="StableDiffusion3InpaintPipeline", patch="patch_size",
    denoise_steps="rest",
)
