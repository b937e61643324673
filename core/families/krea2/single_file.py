"""Krea 2 split files: the denoiser alone (krea/Krea-2-Raw ``raw.safetensors``, Krea-2-Turbo ``turbo.safetensors``,
or ComfyUI's fp8 / ComfyUI-GGUF files of them) in krea-ai/krea-2's ``SingleStreamDiT`` names (``first``, ``blocks.N.
attn.wq``, ``txtfusion``...; bare or under ``model.diffusion_model.``), converted by diffusers' own
``convert_krea2_transformer_checkpoint_to_diffusers``; with the Qwen3-VL-4B text encoder (``models/text_encoders``:
transformers' names ``model.language_model.*`` / ``model.visual.*`` or Qwen's ``model.*`` / ``visual.*``, read by
``models/build.py: qwen_vl_model``), its Qwen2 tokenizer (Qwen3-VL's byte-level BPE is Qwen2.5's vocabulary:
ComfyUI's ``comfy/text_encoders/qwen25_tokenizer`` serves) and the Qwen-Image VAE in the Wan 2.1 layout
(``qwen_image_vae.safetensors``: ``models/wan_vae.py``).

Any size: the denoiser's config is read off the weights (``derive``: depth, width, heads, KV heads, SwiGLU widths,
text width and taps, text-fusion depth and heads); the RoPE axes come from the shipped config or a config folder
(``check``: they must add up to the head width, and the text encoder must be as wide as ``txtmlp.1``).

Raw and Turbo have the same keys: a file cannot tell them apart, so a split file loads with Raw's schedule
(``is_distilled`` false, the resolution-dependent shift); only a Turbo diffusers folder runs Turbo's fixed shift.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import Arch, ConfigMismatch, Encoder, check_rope_axes, check_text_width, count_blocks

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

# an all-in-one file (none is known) would keep the text encoder as ComfyUI names its Qwen3-VL clip
_QWEN3_VL = (Encoder("text_encoder", "qwen3_vl_4b", ("text_encoders.qwen3_vl_4b.transformer.",)),)
_FIRST, _WQ, _PROJECTOR = "first.weight", "blocks.0.attn.wq.weight", "txtfusion.projector.weight"
_LAYERWISE, _REFINER = "txtfusion.layerwise_blocks.", "txtfusion.refiner_blocks."


def _heads(shapes: dict, stem: str, width: int) -> tuple[int, int, str]:
    """(heads, KV heads, evidence) of one attention: its q-norm width is the head width."""
    head, kv = shapes[f"{stem}attn.qknorm.qnorm.scale"], shapes[f"{stem}attn.wk.weight"]  # KeyError: "lacks"
    if width % head[0] or kv[0] % head[0]:
        raise ConfigMismatch(f"{stem}attn: width {width} and {stem}attn.wk.weight {kv} are no whole number of heads "
                             f"of {stem}attn.qknorm.qnorm.scale {list(head)}")
    return width // head[0], kv[0] // head[0], f"{stem}attn.qknorm.qnorm.scale [{head[0]}]"


def derive(shapes: dict) -> dict:
    """The transformer's config from its shapes (and the VAE's latent channels it needs)."""
    hidden, in_channels = shapes[_FIRST]
    heads, kv_heads, head_evidence = _heads(shapes, "blocks.0.", hidden)
    text = shapes["txtmlp.1.weight"][1]
    text_heads, text_kv, text_evidence = _heads(shapes, _LAYERWISE + "0.", text)
    if in_channels % 4:
        raise ConfigMismatch(f"first.weight [{hidden}, {in_channels}] is not 2 x 2 patches of latent channels")
    taps, depth = shapes[_PROJECTOR][1], count_blocks(shapes, "blocks.")
    layerwise, refiner = count_blocks(shapes, _LAYERWISE), count_blocks(shapes, _REFINER)
    return {"transformer": {
        "num_layers": (depth, f"{depth} blocks"),
        "in_channels": (in_channels, f"first.weight [{hidden}, {in_channels}]"),
        "attention_head_dim": (hidden // heads, head_evidence),
        "num_attention_heads": (heads, f"first.weight [{hidden}, ...] / {head_evidence}"),
        "num_key_value_heads": (kv_heads, f"blocks.0.attn.wk.weight / {head_evidence}"),
        "intermediate_size": (shapes["blocks.0.mlp.gate.weight"][0], "blocks.0.mlp.gate.weight"),
        "timestep_embed_dim": (shapes["tmlp.0.weight"][1], "tmlp.0.weight"),
        "text_hidden_dim": (text, f"txtmlp.1.weight [{hidden}, {text}]"),
        "num_text_layers": (taps, f"txtfusion.projector.weight [1, {taps}]"),
        "text_num_attention_heads": (text_heads, f"width {text} / {text_evidence}"),
        "text_num_key_value_heads": (text_kv, f"{_LAYERWISE}0.attn.wk.weight / {text_evidence}"),
        "text_intermediate_size": (shapes[_LAYERWISE + "0.mlp.gate.weight"][0], f"{_LAYERWISE}0.mlp.gate.weight"),
        "num_layerwise_text_blocks": (layerwise, f"{layerwise} txtfusion.layerwise_blocks"),
        "num_refiner_text_blocks": (refiner, f"{refiner} txtfusion.refiner_blocks"),
    }, "vae": {"z_dim": (in_channels // 4, f"first.weight [{hidden}, {in_channels}]: 2 x 2 patches")}}


def check(configs: dict, source) -> None:
    """RoPE's axes add up to the head width; the text encoder is as wide as the denoiser's text input."""
    check_rope_axes(configs, source)
    check_text_width(configs, source, "text_hidden_dim")


_FILES = {"configs": CONFIGS, "vae_file": "qwen_image_vae.safetensors (the Qwen-Image VAE, Wan 2.1 layout)",
          "derive": derive, "check": check}

ARCHS = (
    Arch("krea2", "Krea 2", ((_PROJECTOR, None), (_FIRST, (6144, 64)), (_WQ, (6144, 6144))), _QWEN3_VL, **_FILES),
    Arch("tiny-krea2", "tiny Krea 2 (built-in)", ((_PROJECTOR, None), (_FIRST, (64, 64)), (_WQ, (64, 64))),
         _QWEN3_VL, tiny=True, **_FILES),
)
OTHER_VARIANTS = ()
