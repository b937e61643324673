"""CogView 4: a single-stream DiT (``CogView4Transformer2DModel``) and a GLM-4 text encoder.

diffusers' loader takes the transformer only. Its pipeline passes custom timesteps and sigmas with a
resolution-dependent linear shift, which only FlowMatch Euler takes: the model's own scheduler is the one that
runs. No single files, no original-name table.
"""

from ...generation.calls import diffusers_call
from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import tiny

FAMILY = Family(
    key="cogview4", title="CogView 4", pipeline_classes=("CogView4Pipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-cogview4", blocks=RANGES, schedulers={}, call=diffusers_call,
    single_files=(), original_names=None,
    # its blocks' names (transformer_blocks.N.attn1 / ff) are generic; its embedders are its own
    lora_markers=(("time_condition_embed", "CogView 4"), ("patch_embed.text_proj", "CogView 4"),
                  ("patch_embed_text_proj", "CogView 4")),
    patch="patch_size",
)
