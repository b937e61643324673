"""HiDream-I1 split files: ComfyUI's ``models/diffusion_models/hidream_i1_{full,dev,fast}_{bf16,fp8}.safetensors``
(or ComfyUI-GGUF's ``.gguf``, arch ``hidream``), transformer keys in diffusers' own names
(``double_stream_blocks.0.block.ff_i.experts.0.w1``; bare or under ``model.diffusion_model.``, which diffusers'
``convert_hidream_transformer_to_diffusers`` strips), with ComfyUI's four text encoders in
``models/text_encoders/``: ``clip_l_hidream.safetensors`` and ``clip_g_hidream.safetensors`` (Long-CLIP L and G:
248 positions, the 128-token prompts the pipeline gives them do not fit a 77-position CLIP),
``t5xxl_fp8_e4m3fn_scaled.safetensors`` (or fp16) and ``llama_3.1_8b_instruct_fp8_scaled.safetensors``
(``text_encoder.py``), and FLUX.1's VAE ``ae.safetensors`` in ``models/vae/``.

Any size: the transformer's config is read off the weights (``derive``: double and single blocks, width, channels,
text widths, pooled width, routed experts), as ComfyUI's detection (``comfy/model_detection.py``, keyed on
``caption_projection.0.linear.weight``) fixes them for HiDream-I1. The head width is in no weight (the q/k RMS norms
span the whole width): it is HiDream-I1's 128 (ComfyUI fixes it too; the built-in tiny's 8), and the heads are the
width over it. What the shapes cannot tell comes from the shipped config or a config folder, checked against the
weights (``check``): the RoPE axes add up to the head width, ``llama_layers`` names one Llama layer per block, the
two CLIPs' projections add up to the pooled width.

Full, Dev and Fast have the same weights' shapes and keys (they differ in their scheduler, steps and guidance): a
file runs with the shipped scheduler, FlowMatch Euler with shift 3.0 and no dynamic shifting (ComfyUI's HiDream
default, ``supported_models.HiDream``: shift 3.0; HiDream-ai's Full and Fast settings); Dev's shift 6.0 comes from a
diffusers folder of it in ``config_folders`` (or the scheduler picked in Generate).

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import functools
import os

from ...models.arch import Arch, ConfigMismatch, Encoder, check_rope_axes, count_blocks
from .text_encoder import llama_model

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

# split files only: the text encoders come from models/text_encoders (no all-in-one HiDream file is published; a
# denoiser under model.diffusion_model. loads, its encoders are looked for beside it)
_ENCODERS = (Encoder("text_encoder", "long_clip_l", ()), Encoder("text_encoder_2", "long_clip_g", ()),
             Encoder("text_encoder_3", "t5xxl", ()), Encoder("text_encoder_4", "llama31_8b", ()))
_X, _CAPTION = "x_embedder.proj.weight", "caption_projection.0.linear.weight"
_SHARED = "double_stream_blocks.0.block.ff_i.shared_experts.w3.weight"  # ComfyUI-GGUF's hidream detection keys
_POOLED, _FINAL = "p_embedder.pooled_embedder.linear_1.weight", "final_layer.linear.weight"
_GATES = ("double_stream_blocks.0.block.ff_i.gate.weight", "single_stream_blocks.0.block.ff_i.gate.weight")


def derive(shapes: dict, head: int = 128) -> dict:
    """The transformer's config from its shapes (and what the T5, the Llama and the VAE must be); ``head``: the
    head width, which no weight tells (HiDream-I1's 128; the built-in tiny's 8)."""
    inner, packed = shapes[_X]
    out = shapes[_FINAL][0]
    if packed % 4 or out % 4:
        raise ConfigMismatch(f"x_embedder.proj.weight [{inner}, {packed}] and final_layer.linear.weight [{out}, ...] "
                             "are not 2 x 2 patches of latent channels")
    if inner % head:
        raise ConfigMismatch(f"its width {inner} (x_embedder.proj.weight [{inner}, {packed}]) is no whole number of "
                             f"{head}-wide heads; the weights cannot tell the head width")
    double, single = count_blocks(shapes, "double_stream_blocks."), count_blocks(shapes, "single_stream_blocks.")
    t5_key = f"caption_projection.{double + single}.linear.weight"  # one per block, then T5's
    t5, llama, pooled = shapes[t5_key][1], shapes[_CAPTION][1], shapes[_POOLED][1]
    gate = next((k for k in _GATES if k in shapes), _GATES[0])
    experts = shapes[gate][0]
    where = f"x_embedder.proj.weight [{inner}, {packed}]"
    return {"transformer": {
        "num_layers": (double, f"{double} double_stream_blocks"),
        "num_single_layers": (single, f"{single} single_stream_blocks"),
        "attention_head_dim": (head, f"width {inner} in {head}-wide heads (HiDream-I1's; no weight tells it)"),
        "num_attention_heads": (inner // head, f"{where} / head width {head}"),
        "in_channels": (packed // 4, f"{where}: 2 x 2 patches"),
        "out_channels": (out // 4, f"final_layer.linear.weight [{out}, {inner}]: 2 x 2 patches"),
        "caption_channels": ([t5, llama], f"{t5_key} [{inner}, {t5}] (T5) and {_CAPTION} [{inner}, {llama}] (Llama)"),
        "text_emb_dim": (pooled, f"{_POOLED} [{inner}, {pooled}]"),
        "num_routed_experts": (experts, f"{gate} [{experts}, {inner}]"),
    }, "text_encoder_3": {"d_model": (t5, f"{t5_key} [{inner}, {t5}]")},
        "text_encoder_4": {"hidden_size": (llama, f"{_CAPTION} [{inner}, {llama}]")},
        "vae": {"latent_channels": (packed // 4, f"{where}: 2 x 2 patches")}}


def check(configs: dict, source) -> None:
    """RoPE's axes add up to the head width; one Llama layer per block, each one the Llama has; the two CLIPs'
    pooled projections add up to the pooled width the denoiser takes."""
    check_rope_axes(configs, source)
    config = configs["transformer"]
    blocks = config["num_layers"] + config["num_single_layers"]
    layers, llama = list(config["llama_layers"]), configs["text_encoder_4"]["num_hidden_layers"]
    if len(layers) != blocks or any(not 0 <= n < llama for n in layers):
        raise ConfigMismatch(f"its {blocks} blocks ({source('transformer', 'num_layers')}, "
                             f"{source('transformer', 'num_single_layers')}) each read one of the {llama} Llama "
                             f"layers, but llama_layers {layers} ({source('transformer', 'llama_layers')}) does not "
                             "name one per block: the weights cannot tell which; name a diffusers folder of this "
                             "model in config_folders (models/diffusers)")
    pooled = sum(configs[c]["projection_dim"] for c in ("text_encoder", "text_encoder_2"))
    if pooled != config["text_emb_dim"]:
        raise ConfigMismatch(f"its denoiser takes pooled text {config['text_emb_dim']} wide "
                             f"({source('transformer', 'text_emb_dim')}), but the two CLIPs' projection_dim add up "
                             f"to {pooled} ({source('text_encoder', 'projection_dim')}): name a diffusers folder of "
                             "this model in config_folders (models/diffusers)")


_FILES = {"configs": CONFIGS, "vae_file": "ae.safetensors (the FLUX.1 VAE)", "check": check,
          "builders": {"text_encoder_4": llama_model}}

ARCHS = (
    Arch("hidream-i1", "HiDream-I1", ((_CAPTION, (2560, 4096)), (_X, (2560, 64)), (_SHARED, (6912, 2560))),
         _ENCODERS, derive=derive, **_FILES),
    Arch("tiny-hidream", "tiny HiDream (built-in)", ((_CAPTION, (32, 16)), (_X, (32, 16)), (_SHARED, (256, 32))),
         _ENCODERS, derive=functools.partial(derive, head=8), tiny=True, **_FILES),
)
