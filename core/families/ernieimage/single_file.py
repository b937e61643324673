"""ERNIE-Image split files: the denoiser alone (Comfy-Org/ERNIE-Image's ``diffusion_models/ernie-image.safetensors``
and ``ernie-image-turbo.safetensors``, or fp8 / ComfyUI-GGUF files of them) in ``models/diffusion_models``, the
Ministral 3 3B text encoder (``ministral-3-3b.safetensors``, its tekken tokenizer inside: ``text_encoder.py``) in
``models/text_encoders``, the FLUX.2 VAE (``flux2-vae.safetensors``: ``flux2/vae.py``) in ``models/vae``.

The denoiser's keys are diffusers' own module names (``x_embedder.proj``, ``layers.N.self_attention.to_q``,
``layers.N.mlp.gate_proj``, ``final_linear``; bare or under ``model.diffusion_model.``): ComfyUI's ERNIE model
(``comfy/ldm/ernie/model.py``, after 0.8.0) names its modules so, and diffusers' single-file converter
(``convert_ernie_image_transformer_checkpoint_to_diffusers``) only strips the prefix. Every quantized block Linear
lands on the Linear of its own name (no names table, as Qwen-Image).

Any size: the transformer's config is read off the weights (``derive``: depth, width, heads from the q norm, FFN
width, text width from ``text_proj`` (absent when the text is as wide as the blocks), patch, channels); the RoPE
axes come from the shipped config or a config folder (``check``: they add up to the head width, and the text
encoder is as wide as the text input). A file cannot tell ERNIE-Image from ERNIE-Image-Turbo (same keys and
shapes): a split file runs the base model's scheduler; a Turbo diffusers folder in ``config_folders`` gives its own.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import Arch, ConfigMismatch, Encoder, count_blocks
from ..flux2.vae import vae_model
from .text_encoder import ministral_model

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
_MINISTRAL = (Encoder("text_encoder", "ministral3", ()),)
_X, _NORM, _Q = "x_embedder.proj.weight", "layers.0.adaLN_sa_ln.weight", "layers.0.self_attention.to_q.weight"


def derive(shapes: dict) -> dict:
    """The transformer's config from its shapes (and the FLUX.2 VAE's latent channels it needs)."""
    hidden, in_channels, patch = shapes[_X][0], shapes[_X][1], shapes[_X][2]
    head = shapes["layers.0.self_attention.norm_q.weight"][0]  # a missing key: "lacks" (models/configs.py)
    if hidden % head:
        raise ConfigMismatch(f"its width {hidden} ({_X} {list(shapes[_X])}) is no whole number of heads of "
                             f"layers.0.self_attention.norm_q.weight [{head}]")
    final = shapes["final_linear.weight"][0]
    if final % (patch * patch):
        raise ConfigMismatch(f"final_linear.weight [{final}, {hidden}] is not {patch} x {patch} patches")
    text = shapes["text_proj.weight"][1] if "text_proj.weight" in shapes else hidden
    depth, ffn = count_blocks(shapes, "layers."), shapes["layers.0.mlp.gate_proj.weight"][0]
    out = {"transformer": {
        "num_layers": (depth, f"{depth} layers"),
        "hidden_size": (hidden, f"{_X} {list(shapes[_X])}"),
        "num_attention_heads": (hidden // head, f"width {hidden} / layers.0.self_attention.norm_q.weight [{head}]"),
        "ffn_hidden_size": (ffn, f"layers.0.mlp.gate_proj.weight [{ffn}, {hidden}]"),
        "in_channels": (in_channels, f"{_X} {list(shapes[_X])}"),
        "out_channels": (final // (patch * patch), f"final_linear.weight [{final}, {hidden}]"),
        "patch_size": (patch, f"{_X} {list(shapes[_X])}"),
        "text_in_dim": (text, f"text_proj.weight [{hidden}, {text}]" if "text_proj.weight" in shapes
                        else "no text_proj: the text is as wide as the blocks"),
    }}
    if in_channels % 4 == 0:  # ERNIE-Image's latents are the FLUX.2 VAE's, patchified 2 x 2
        out["vae"] = {"latent_channels": (in_channels // 4, f"{_X} {list(shapes[_X])}: 2 x 2 patchified latents")}
    return out


def check(configs: dict, source) -> None:
    """RoPE's axes add up to the head width; the text encoder is as wide as the denoiser's text input."""
    config = configs["transformer"]
    head, axes = config["hidden_size"] // config["num_attention_heads"], list(config["rope_axes_dim"])
    if sum(axes) != head:
        raise ConfigMismatch(f"its attention heads are {head} wide ({source('transformer', 'num_attention_heads')}), "
                             f"but rope_axes_dim {axes} ({source('transformer', 'rope_axes_dim')}) adds up to "
                             f"{sum(axes)}: the weights cannot tell RoPE's axes; name a diffusers folder of this "
                             "model in config_folders (models/diffusers)")
    text = configs["text_encoder"].get("text_config", configs["text_encoder"])
    if text.get("hidden_size") != config["text_in_dim"]:
        raise ConfigMismatch(f"its denoiser needs text_encoder with hidden_size {config['text_in_dim']} "
                             f"({source('transformer', 'text_in_dim')}), but {source('text_encoder', 'hidden_size')} "
                             f"has hidden_size {text.get('hidden_size')}: name a diffusers folder of this model in "
                             "config_folders (models/diffusers)")


_FILES = {"configs": CONFIGS, "vae_file": "flux2-vae.safetensors (the FLUX.2 VAE)", "derive": derive,
          "check": check, "builders": {"vae": vae_model, "text_encoder": ministral_model}}

ARCHS = (
    Arch("ernie-image", "ERNIE-Image", ((_NORM, None), (_X, (4096, 128, 1, 1)), (_Q, (4096, 4096))), _MINISTRAL,
         **_FILES),
    Arch("tiny-ernieimage", "tiny ERNIE-Image (built-in)", ((_NORM, None), (_X, (32, 16, 1, 1)), (_Q, (32, 32))),
         _MINISTRAL, tiny=True, **_FILES),
)
OTHER_VARIANTS = ()
