"""FLUX.2 [klein] (4B, 9B; base and distilled): a FLUX.2 transformer and one Qwen3 text encoder.

FLUX.2 [dev] has its own row (``flux2dev/``): another pipeline class and text encoder (Mistral Small 3), embedded
instead of classifier-free guidance and no inpainting class, on the same transformer and LoRA names.
"""

from ...models.family import Family
from . import tiny
from .blocks import BLOCKS
from .generate import call
from .names import flux2_names
from .schedulers import SCHEDULERS

# FLUX.2's block names are FLUX.1's (double_blocks, single_blocks); these are the keys only FLUX.2 files have.
MARKERS = (("to_qkv_mlp_proj", "FLUX.2"), ("stream_modulation", "FLUX.2"), ("ff.linear_in", "FLUX.2"),
           ("ff_linear_in", "FLUX.2"), ("ff_context.linear_in", "FLUX.2"), ("ff_context_linear_in", "FLUX.2"))
# FLUX.2 single files (BFL layout, ComfyUI's diffusion_models) are not loaded from single files yet: named by width
# (single_stream_modulation.lin is [3 x hidden, hidden]) so Load Pipeline says which model it met
_SINGLE = "single_stream_modulation.lin.weight"
OTHER_VARIANTS = ((_SINGLE, lambda shape: shape[-1] == 3072, "a FLUX.2 [klein] 4B model"),
                  (_SINGLE, lambda shape: shape[-1] == 4096, "a FLUX.2 [klein] 9B model"),
                  (_SINGLE, lambda shape: shape[-1] != 6144, "a FLUX.2 model"))  # 6144: FLUX.2 [dev]'s row
KOHYA_PREFIXES = (("lora_unet_", "transformer"), ("lora_te_", "text_encoder"), ("lora_te1_", "text_encoder"))

FAMILY = Family(
    key="flux2", title="FLUX.2 [klein]", pipeline_classes=("Flux2KleinPipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=KOHYA_PREFIXES,
    tiny=tiny.build, builtin="tiny-flux2", blocks=BLOCKS, schedulers=SCHEDULERS, call=call,
    single_files=(), original_names=flux2_names, lora_markers=MARKERS, other_variants=OTHER_VARIANTS,
    inpaint="Flux2KleinInpaintPipeline", edit="Flux2KleinPipeline", edit_references=True, patch=2, denoise_steps="rest",
)
