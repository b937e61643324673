"""Ideogram 4: a single-stream DiT (``Ideogram4Transformer2DModel``) over text features tapped from 13 layers of
Qwen3-VL, with a second, unconditional transformer for guidance.

diffusers' loader takes the (conditional) transformer only; the unconditional one is left as it is. Guidance is
classifier-free with the unconditional transformer (no negative prompt). No single files, no original-name table;
the model's own scheduler only (its pipeline passes its own sigmas and shift).
"""

from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import tiny
from .generate import call

FAMILY = Family(
    key="ideogram4", title="Ideogram 4", pipeline_classes=("Ideogram4Pipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-ideogram4", blocks=RANGES, schedulers={}, call=call,
    single_files=(), original_names=None,
    # its attention and feed-forward names are Z-Image's (layers.N.attention.to_q, feed_forward.w1); its
    # modulation (adaln_modulation, lower case) and text-feature projection are its own
    lora_markers=(("adaln_modulation", "Ideogram 4"), ("llm_cond_proj", "Ideogram 4")),
    patch=2,
)
