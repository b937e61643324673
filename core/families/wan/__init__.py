"""Wan 2.1 / 2.2 video: a ``WanTransformer3DModel`` (Wan 2.2 A14B: two of them, the high-noise ``transformer`` and the
low-noise expert ``transformer_2``), a UMT5 text encoder and the Wan VAE; text-to-video (``WanPipeline``) and
image-to-video (``WanImageToVideoPipeline``; TI2V-5B does both).

A LoRA's denoiser part goes into both experts (strength_model covers both; ``transformer`` / ``transformer_2``
strengths set each alone), a high/low pair goes in one each (Load LoRA Pair). Block weights name ``blocks.N-M``,
the same in each expert. Generate makes ``num_frames`` frames (4k + 1), handed on as one IMAGE batch; an image on an
image-to-video model is its first frame (Generate's edit mode). diffusers' video-to-video pipeline is not offered:
it drops the low-noise expert and miscomputes the Wan 2.2 VAE's scale, so an image on a text-to-video model is
refused (``generate.cannot_run``). Split files (ComfyUI's denoiser, UMT5 and VAE files): ``single_file.py``.
"""

from dataclasses import replace

from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import single_file, tiny
from .generate import FRAMES, I2V, call, cannot_run
from .names import wan_names
from .schedulers import SCHEDULERS

FAMILY = Family(
    key="wan", title="Wan", pipeline_classes=("WanPipeline",), denoiser="transformer",
    text_encoders=("text_encoder",),
    # musubi-tuner writes lora_unet_ (its Wan networks have no text-encoder part)
    kohya_prefixes=(("lora_unet_", "transformer"), ("lora_te_", "text_encoder"), ("lora_te1_", "text_encoder")),
    tiny=tiny.build, builtin="tiny-wan", blocks=RANGES, schedulers=SCHEDULERS, call=call,
    single_files=single_file.ARCHS, other_variants=single_file.OTHER_VARIANTS, original_names=wan_names,
    # Wan's own module names: original (self_attn_q, not CLIP's self_attn_q_proj), diffusers (ffn.net, not ff.net)
    lora_markers=(("self_attn.q.", "Wan"), ("self_attn_q.", "Wan"), ("cross_attn.k_img", "Wan 2.1 I2V"),
                  ("cross_attn_k_img", "Wan 2.1 I2V"), ("ffn.net.0.proj", "Wan"), ("ffn_net_0_proj", "Wan"),
                  ("attn2.add_k_proj", "Wan 2.1 I2V"), ("ffn.0.lora", "Wan"), ("ffn_0.lora", "Wan")),
    edit=I2V, edit_models=(I2V,), patch="patch_size", denoise_steps="rest",
    experts=("transformer_2",), labels=(("transformer", "high noise"), ("transformer_2", "low noise")),
    frames=FRAMES, cannot_run=cannot_run,
)

# The other built-in models (rows that differ from FAMILY only in tiny and builtin): Wan 2.1 I2V, Wan 2.2 A14B
# text-to-video and image-to-video (two experts), Wan 2.2 TI2V-5B.
MORE_BUILTINS = (
    replace(FAMILY, tiny=tiny.builder("i2v"), builtin="tiny-wan-i2v"),
    replace(FAMILY, tiny=tiny.builder("t2v22"), builtin="tiny-wan22"),
    replace(FAMILY, tiny=tiny.builder("i2v22"), builtin="tiny-wan22-i2v"),
    replace(FAMILY, tiny=tiny.builder("ti2v5b"), builtin="tiny-wan22-ti2v"),
)
