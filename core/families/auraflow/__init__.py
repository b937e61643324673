"""AuraFlow: an MMDiT (``AuraFlowTransformer2DModel``: joint blocks, then single blocks) and a UMT5 text encoder.

diffusers' loader takes the transformer only. No single files, no original-name table; FLOW_MATCH schedulers.
"""

from ...generation.calls import diffusers_call
from ...models.family import Family
from ...models.schedulers import FLOW_MATCH
from ...stacks.block_weights import RANGES
from . import tiny

# its single blocks are Flux's name (single_transformer_blocks): registered before Flux so that a file with joint
# blocks is named AuraFlow, and its feed-forward's out_projection is its own
FAMILY = Family(
    key="auraflow", title="AuraFlow", pipeline_classes=("AuraFlowPipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-auraflow", blocks=RANGES, schedulers=FLOW_MATCH, call=diffusers_call,
    single_files=(), original_names=None,
    lora_markers=(("joint_transformer_blocks", "AuraFlow"), ("out_projection", "AuraFlow")),
    patch="patch_size",
)
