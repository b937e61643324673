"""aMUSEd: a UVit2D transformer over VQ image tokens and a projected CLIP text encoder.

It has no single-file checkpoints and no original module names, and only its own masked-token scheduler.
"""

from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import tiny
from .generate import call

FAMILY = Family(
    key="amused", title="aMUSEd", pipeline_classes=("AmusedPipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"), ("lora_te_", "text_encoder")),
    tiny=tiny.build, builtin="tiny-amused", blocks=RANGES, schedulers={}, call=call, single_files=(),
    original_names=None, lora_markers=(("transformer_layers", "aMUSEd"),),
    img2img="AmusedImg2ImgPipeline", inpaint="AmusedInpaintPipeline",
    unbatched="aMUSEd's scheduler takes one generator for the whole batch",
)
