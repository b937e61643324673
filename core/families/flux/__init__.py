"""FLUX.1: a double/single-stream transformer, a CLIP-L and a T5 text encoder."""

from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import single_file, tiny
from .generate import call
from .names import flux_names
from .schedulers import SCHEDULERS

# sd-scripts names Flux's T5 lora_te3_ ("ComfyUI compatible"); some trainers write lora_te2_.
FAMILY = Family(
    key="flux", title="Flux", pipeline_classes=("FluxPipeline",), denoiser="transformer",
    text_encoders=("text_encoder", "text_encoder_2"),
    kohya_prefixes=(("lora_unet_", "transformer"), ("lora_te1_", "text_encoder"), ("lora_te_", "text_encoder"),
                    ("lora_te2_", "text_encoder_2"), ("lora_te3_", "text_encoder_2")),
    tiny=tiny.build, builtin="tiny-flux", blocks=RANGES, schedulers=SCHEDULERS, call=call,
    single_files=single_file.ARCHS, original_names=flux_names,
    lora_markers=(("single_transformer_blocks", "Flux"), ("double_blocks", "Flux"), ("single_blocks", "Flux")),
    lookalikes=("Chroma",),  # Chroma LoRAs have Flux's block names and shapes, not its weights
    other_variants=single_file.OTHER_VARIANTS,
    img2img="FluxImg2ImgPipeline", inpaint="FluxInpaintPipeline", patch=2, denoise_steps="rest",
)
