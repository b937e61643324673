"""HiDream-I1: a sparse (mixture-of-experts) DiT (``HiDreamImageTransformer2DModel``: double-stream, then
single-stream blocks) conditioned on CLIP-L, CLIP-G, T5-XXL and Llama 3.1 8B.

diffusers' loader takes the transformer only. Its pipeline renders every picture at the area of its
``default_sample_size`` (128 latents a side: about one megapixel), in the aspect ratio of the size asked.
FlowMatch Heun and diffusers' DPM solver do not take its shift (mu).

Split files (``single_file.py``): ComfyUI's transformer files (bf16, fp8, scaled fp8, GGUF) use diffusers' own
module names, so there is no original-name table: every quantized Linear weight (attention, the shared and routed
experts' w1 / w2 / w3, the modulation) lands on the Linear of its name and stays 8 / 4-bit; the MoE router
(``ff_i.gate.weight``, a plain parameter, no Linear) is dequantized at load.
"""

from ...generation.calls import diffusers_call
from ...models.family import Family
from ...models.schedulers import FLOW_MATCH
from ...stacks.block_weights import RANGES
from . import single_file, tiny

FAMILY = Family(
    key="hidream", title="HiDream", pipeline_classes=("HiDreamImagePipeline",), denoiser="transformer",
    text_encoders=("text_encoder", "text_encoder_2", "text_encoder_3", "text_encoder_4"),
    kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-hidream", blocks=RANGES,
    schedulers={name: FLOW_MATCH[name] for name in ("FlowMatch Euler", "UniPC")}, call=diffusers_call,
    single_files=single_file.ARCHS, original_names=None,
    lora_markers=(("double_stream_blocks", "HiDream"), ("single_stream_blocks", "HiDream")),
    patch=2, pipeline_attributes=("default_sample_size",),
)
