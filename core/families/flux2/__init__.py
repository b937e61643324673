"""FLUX.2 [klein] (4B, 9B; base and distilled): a FLUX.2 transformer and one Qwen3 text encoder.

FLUX.2 [dev] has its own row (``flux2dev/``): another pipeline class and text encoder (Mistral Small 3), embedded
instead of classifier-free guidance and no inpainting class, on the same transformer and LoRA names.
"""

from ...models.family import Family
from . import single_file, tiny
from .blocks import BLOCKS
from .generate import call
from .names import flux2_names
from .schedulers import SCHEDULERS

# FLUX.2's block names are FLUX.1's (double_blocks, single_blocks); these are the keys only FLUX.2 files have.
MARKERS = (("to_qkv_mlp_proj", "FLUX.2"), ("stream_modulation", "FLUX.2"), ("ff.linear_in", "FLUX.2"),
           ("ff_linear_in", "FLUX.2"), ("ff_context.linear_in", "FLUX.2"), ("ff_context_linear_in", "FLUX.2"))
KOHYA_PREFIXES = (("lora_unet_", "transformer"), ("lora_te_", "text_encoder"), ("lora_te1_", "text_encoder"))

FAMILY = Family(
    key="flux2", title="FLUX.2 [klein]", pipeline_classes=("Flux2KleinPipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=KOHYA_PREFIXES,
    tiny=tiny.build, builtin="tiny-flux2", blocks=BLOCKS, schedulers=SCHEDULERS, call=call,
    single_files=single_file.ARCHS, original_names=flux2_names, lora_markers=MARKERS,
    inpaint="Flux2KleinInpaintPipeline", edit="Flux2KleinPipeline", edit_references=True, patch=2, denoise_steps="rest",
)
