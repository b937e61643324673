"""Lumina Image 2.0 single files: ComfyUI's ``models/diffusion_models/lumina_2_model_bf16.safetensors`` (Alpha-VLLM's
``NextDiT`` names, which ComfyUI's ``comfy/ldm/lumina/model.py`` keeps: fused ``attention.qkv``, ``cap_embedder``,
``final_layer``; bare or under ``model.diffusion_model.``; bf16, fp8, ComfyUI's scaled fp8 or ComfyUI-GGUF's
``.gguf``) with the Gemma 2 2B text encoder (``models/text_encoders/gemma_2_2b_fp16.safetensors``: transformers'
names under ``model.``, its sentencepiece tokenizer inside as ``spiece_model``) and the FLUX.1 VAE
(``models/vae/ae.safetensors``), or all in one (``models/checkpoints/lumina_2.safetensors``: ComfyUI's checkpoint
layout, Gemma under ``text_encoders.gemma2_2b.transformer.``, the VAE under ``vae.``). diffusers' own
``convert_lumina2_to_diffusers`` converts the denoiser, after ``prepare`` splits the fused q/k/v by the config's
heads (the converter hard-codes Lumina Image 2.0's 2304 / 768 / 768 rows).

Any size: the transformer's config is read off the weights (``derive``: width, heads from the q/k norm, KV heads
from the fused q/k/v rows, depth, refiners, SwiGLU width, caption width, channels), as ComfyUI's model detection does
(``comfy/model_detection.py``: ``cap_embedder.1.weight`` marks Lumina 2, its shape gives the width and caption
width); the RoPE axes come from the shipped config or a config folder (``check``: they add up to the head width).

Lumina 2 and Z-Image are both ComfyUI's ``lumina2`` image model. Z-Image's blocks modulate through
``adaLN_modulation.0`` (one Linear from 256 wide) and it carries ``cap_pad_token``; Lumina 2's through
``adaLN_modulation.1`` (SiLU, then a Linear from min(width, 1024)) without pad tokens: that tells the two apart at any
size. NewBie (Lumina 2 with a pooled CLIP input, ``clip_text_pooled_proj``) is named, not loaded.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import math
import os
from functools import partial

from ...models.arch import UNET_PREFIX, Arch, ConfigMismatch, Encoder, count_blocks

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

# ComfyUI's checkpoints keep Gemma 2 under text_encoders.gemma2_2b.transformer.model. (comfy/supported_models.py)
_GEMMA2 = (Encoder("text_encoder", "gemma2_2b", ("text_encoders.gemma2_2b.transformer.model.",)),)
_QKV, _CAP, _MOD = "layers.0.attention.qkv.weight", "cap_embedder.1.weight", "layers.0.adaLN_modulation.1.weight"
_NEWBIE, _PAD = "clip_text_pooled_proj.0.weight", "cap_pad_token"
_POWERS = (256, 128, 64, 32, 16, 8, 4, 2, 1)


def _ffn(width: int, inner: int, preferred: int) -> tuple[int, float | None]:
    """``(multiple_of, ffn_dim_multiplier)`` with which diffusers' ``LuminaFeedForward`` is ``inner`` wide: its
    width is ``multiple_of`` x ceil(int(multiplier x 4 x width) / multiple_of); the row's own ``multiple_of`` first."""
    def built(multiple: int, multiplier: float | None) -> int:
        base = int(multiplier * 4 * width) if multiplier is not None else 4 * width
        return multiple * -(-base // multiple)

    candidates = (preferred, *(p for p in _POWERS if p != preferred))
    multiplier = inner / (4 * width)
    while int(multiplier * 4 * width) < inner:  # float rounding: the smallest multiplier that gives inner
        multiplier = math.nextafter(multiplier, math.inf)
    for guess in (None, multiplier):
        for multiple in candidates:
            if inner % multiple == 0 and built(multiple, guess) == inner:
                return multiple, guess
    raise ConfigMismatch(f"its feed-forward width {inner} is no width diffusers' LuminaFeedForward builds")


def derive(shapes: dict, multiple_of: int = 256) -> dict:
    """The transformer's config from its shapes (the Gemma 2 width and the VAE's latent channels it needs);
    ``multiple_of``: the row's shipped value, kept when it gives the file's feed-forward width."""
    width, caption = shapes[_CAP]
    head = shapes["layers.0.attention.q_norm.weight"][0]  # a missing key: "lacks" (models/configs.py)
    rows = shapes[_QKV][0]
    if width % head or (rows - width) % (2 * head) or rows <= width:
        raise ConfigMismatch(f"{_QKV} [{rows}, {width}] is no whole number of query and key/value heads of "
                             f"layers.0.attention.q_norm.weight [{head}]")
    kv = (rows - width) // (2 * head)
    packed = shapes["x_embedder.weight"][1]
    if packed % 4 or shapes["final_layer.linear.weight"][0] != packed:
        raise ConfigMismatch(f"x_embedder.weight [{width}, {packed}] and final_layer.linear.weight "
                             f"{list(shapes['final_layer.linear.weight'])} are not 2 x 2 patches of latent channels")
    inner = shapes["layers.0.feed_forward.w1.weight"][0]
    multiple, multiplier = _ffn(width, inner, multiple_of)
    depth, refiners = count_blocks(shapes, "layers."), count_blocks(shapes, "noise_refiner.")
    ffn = f"layers.0.feed_forward.w1.weight [{inner}, {width}]"
    return {"transformer": {
        "hidden_size": (width, f"{_CAP} [{width}, {caption}]"),
        "num_attention_heads": (width // head, f"{_CAP} [{width}, ...] / head width {head} "
                                               "(layers.0.attention.q_norm.weight)"),
        "num_kv_heads": (kv, f"{_QKV} [{rows}, {width}]: {width} query rows + 2 x {kv} heads of {head}"),
        "num_layers": (depth, f"{depth} layers"),
        "num_refiner_layers": (refiners, f"{refiners} noise_refiner blocks"),
        "multiple_of": (multiple, ffn),
        "ffn_dim_multiplier": (multiplier, ffn),
        "cap_feat_dim": (caption, f"{_CAP} [{width}, {caption}]"),
        "in_channels": (packed // 4, f"x_embedder.weight [{width}, {packed}]: 2 x 2 patches"),
    }, "text_encoder": {"hidden_size": (caption, f"{_CAP} [{width}, {caption}]")},
        "vae": {"latent_channels": (packed // 4, f"x_embedder.weight [{width}, {packed}]: 2 x 2 patches")}}


def check(configs: dict, source) -> None:
    """RoPE's axes (not in the weights) add up to the head width the weights have."""
    config = configs["transformer"]
    head, axes = config["hidden_size"] // config["num_attention_heads"], list(config["axes_dim_rope"])
    if sum(axes) != head:
        raise ConfigMismatch(f"its attention heads are {head} wide (hidden_size / num_attention_heads: "
                             f"{source('transformer', 'num_attention_heads')}), but axes_dim_rope {axes} "
                             f"({source('transformer', 'axes_dim_rope')}) adds up to {sum(axes)}: the weights cannot "
                             "tell RoPE's axes; name a diffusers folder of this model in config_folders "
                             "(models/diffusers)")


def prepare(tensors: dict, config: dict) -> dict:
    """Each fused ``attention.qkv`` split into ``attention.to_q/k/v`` by the config's heads (views: quantized
    placeholders pass through on the meta device), every context refiner's ``attention_norm1`` named ``norm1``
    (diffusers' converter renames refiners 0 and 1 only), ``model.diffusion_model.`` dropped (a ComfyUI checkpoint's
    or prefixed file's: diffusers' converter strips it from the dict but then reads the prefixed keys);
    diffusers' converter does the rest."""
    head = config["hidden_size"] // config["num_attention_heads"]
    sizes = [config["hidden_size"], config["num_kv_heads"] * head, config["num_kv_heads"] * head]
    out = {}
    for key, tensor in tensors.items():
        key = key.removeprefix(UNET_PREFIX)  # diffusers' converter fails on the prefix it means to strip (0.42.1)
        if key.endswith(".attention.qkv.weight"):
            if tensor.shape[0] != sum(sizes):
                raise ConfigMismatch(f"{key} has {tensor.shape[0]} rows, not the {sum(sizes)} of {sizes}")
            stem = key[: -len("qkv.weight")]
            for part, rows in zip("qkv", tensor.split(sizes), strict=True):
                out[f"{stem}to_{part}.weight"] = rows
        elif ".attention_norm1." in key and key.startswith("context_refiner."):
            out[key.replace(".attention_norm1.", ".norm1.")] = tensor
        else:
            out[key] = tensor
    return out


_FILES = {"configs": CONFIGS, "vae_file": "ae.safetensors (the FLUX.1 VAE)", "absent": (_NEWBIE, _PAD),
          "check": check, "prepare": prepare}

ARCHS = (
    Arch("lumina2", "Lumina Image 2.0", ((_CAP, (2304, 2304)), (_QKV, (3840, 2304)), (_MOD, (9216, 1024))), _GEMMA2,
         derive=partial(derive, multiple_of=256), **_FILES),
    Arch("tiny-lumina2", "tiny Lumina 2 (built-in)", ((_CAP, (32, 16)), (_QKV, (64, 32)), (_MOD, (128, 32))),
         _GEMMA2, derive=partial(derive, multiple_of=16), tiny=True, **_FILES),
)
OTHER_VARIANTS = (
    ((_NEWBIE, _MOD), None, "a NewBie image model (Lumina 2 with a pooled CLIP input, clip_text_pooled_proj)"),
)
