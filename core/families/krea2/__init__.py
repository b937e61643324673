"""Krea 2 (Krea-2-Raw, Krea-2-Turbo): a single-stream MMDiT with a text-fusion transformer inside it, fed by
hidden states tapped from a Qwen3-VL text encoder.

Its trainers (musubi-tuner, ai-toolkit, DiffSynth-Studio, diffusers' script, SimpleTuner) train the denoiser only,
and diffusers' Krea2LoraLoaderMixin loads ``transformer`` only; a file's part for the Qwen3-VL text encoder would
still apply to it (strength_clip), as on the other families. Turbo is the same pipeline class and the same keys
with ``is_distilled`` set in its ``model_index.json`` (a fixed schedule shift), so a Krea-2-Turbo diffusers folder
runs as Turbo with nothing to choose; run it at cfg 1 and about 8 steps. diffusers has no Krea 2 img2img or
inpainting class, so those modes are refused by name.
"""

from ...models.family import Family
from . import single_file, tiny
from .blocks import BLOCKS
from .generate import call
from .names import krea2_names
from .schedulers import SCHEDULERS

FAMILY = Family(
    key="krea2", title="Krea 2", pipeline_classes=("Krea2Pipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-krea2", blocks=BLOCKS, schedulers=SCHEDULERS, call=call,
    single_files=single_file.ARCHS, original_names=krea2_names,
    lora_markers=(("txtfusion", "Krea 2"), ("text_fusion", "Krea 2"), ("attn.wq", "Krea 2"), ("attn_wq", "Krea 2"),
                  ("attn.to_gate", "Krea 2"), ("attn_to_gate", "Krea 2"), ("time_mod_proj", "Krea 2"),
                  ("tproj.1", "Krea 2"), ("tproj_1", "Krea 2")),
    other_variants=single_file.OTHER_VARIANTS, patch=2,
    # its text fusion's layerwise blocks run on (batch x tokens) rows, attending across the text taps
    folded_batches=("text_fusion",),
)
