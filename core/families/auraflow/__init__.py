"""AuraFlow: an MMDiT (``AuraFlowTransformer2DModel``: joint blocks, then single blocks) and a UMT5 text encoder.

diffusers' loader takes the transformer only; FLOW_MATCH schedulers. Single files: fal's / ComfyUI's
``aura_flow_*.safetensors`` checkpoints and the denoiser alone (bf16, fp8, GGUF) with the Pile-T5-XL encoder and the
SDXL VAE as separate files (``single_file.py``); ComfyUI's module names map to diffusers' through ``names.py``.
"""

from ...generation.calls import diffusers_call
from ...models.family import Family
from ...models.schedulers import FLOW_MATCH
from ...stacks.block_weights import RANGES
from . import single_file, tiny
from .names import auraflow_names

# its single blocks are Flux's name (single_transformer_blocks): registered before Flux so that a file with joint
# blocks is named AuraFlow, and its feed-forward's out_projection is its own
FAMILY = Family(
    key="auraflow", title="AuraFlow", pipeline_classes=("AuraFlowPipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-auraflow", blocks=RANGES, schedulers=FLOW_MATCH, call=diffusers_call,
    single_files=single_file.ARCHS, original_names=auraflow_names,
    lora_markers=(("joint_transformer_blocks", "AuraFlow"), ("out_projection", "AuraFlow")),
    patch="patch_size",
)
