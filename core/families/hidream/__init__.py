"""HiDream-I1: a sparse (mixture-of-experts) DiT (``HiDreamImageTransformer2DModel``: double-stream, then
single-stream blocks) conditioned on CLIP-L, CLIP-G, T5-XXL and Llama 3.1 8B.

diffusers' loader takes the transformer only. Its pipeline renders every picture at the area of its
``default_sample_size`` (128 latents a side: about one megapixel), in the aspect ratio of the size asked. No
single files, no original-name table. FlowMatch Heun and diffusers' DPM solver do not take its shift (mu).
"""

from ...generation.calls import diffusers_call
from ...models.family import Family
from ...models.schedulers import FLOW_MATCH
from ...stacks.block_weights import RANGES
from . import tiny

FAMILY = Family(
    key="hidream", title="HiDream", pipeline_classes=("HiDreamImagePipeline",), denoiser="transformer",
    text_encoders=("text_encoder", "text_encoder_2", "text_encoder_3", "text_encoder_4"),
    kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-hidream", blocks=RANGES,
    schedulers={name: FLOW_MATCH[name] for name in ("FlowMatch Euler", "UniPC")}, call=diffusers_call,
    single_files=(), original_names=None,
    lora_markers=(("double_stream_blocks", "HiDream"), ("single_stream_blocks", "HiDream")),
    patch=2, pipeline_attributes=("default_sample_size",),
)
