"""Sana split files: a Sana 1.0 denoiser in NVlabs' original names (``x_embedder``, ``blocks.N.attn.qkv``,
``cross_attn.kv_linear``, ``mlp.inverted_conv.conv``...; bare or under ``model.diffusion_model.``) as a
``.safetensors`` (or fp8 / GGUF) file in ``models/diffusion_models``, converted by diffusers' own
``convert_sana_transformer_to_diffusers``; the Gemma 2 2B IT text encoder in ComfyUI's layout (transformers' Gemma 2
names under ``model.``, its tokenizer as ``spiece_model``; built as Lumina 2's, ``models/build.py: gemma2_model``) in
``models/text_encoders``; the DC-AE in mit-han-lab's original names (``dc-ae-f32c32-sana-1.0``'s
``model.safetensors``: ``encoder.stages.S.op_list.I.main...``, converted by diffusers'
``convert_autoencoder_dc_checkpoint_to_diffusers``) in ``models/vae``.

NVlabs publish the original layout only as pickled ``.pth`` files (``Efficient-Large-Model/Sana_1600M_1024px``'s
``checkpoints/*.pth``), which LoRA Deck never unpickles (refused, saying why); the same weights saved as
``.safetensors`` (what ComfyUI_ExtraModels' Sana loader also reads) load here. Sana 1.5 (QK-normed attention) and Sana
Sprint (also a guidance embedder) are named, not loaded: diffusers' converter reads Sana 1.0's keys only.

Any depth: the transformer's config is read off the weights (``derive``: depth, width, channels, patch, caption
width, MLP ratio); the attention heads are not in the weights (linear attention, no norms): they come from the
shipped config or a config folder (``check``: heads x head width must be the width the weights have). A file cannot
tell 512 px from 1024 px or 2K models (the same shapes): a split file runs the 1024 px config.

``SanaPipeline`` reads the encoder's last hidden state only. Sana was trained with Gemma 2 2B IT; the base Gemma 2 2B
(ComfyUI's ``gemma_2_2b_fp16.safetensors`` for Lumina 2) has the same keys and shapes, so a file cannot tell them
apart: a missing encoder names the IT weights (``Encoder.file``).

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import UNET_PREFIX, Arch, ConfigMismatch, Encoder, check_text_width, count_blocks

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
_GEMMA = (Encoder("text_encoder", "gemma2_2b", (),
                  file="a Gemma 2 2B IT file in ComfyUI's layout (model.*, spiece_model)"),)
_X, _QKV, _KV = "x_embedder.proj.weight", "blocks.0.attn.qkv.weight", "blocks.0.cross_attn.kv_linear.weight"
QK_NORM = "blocks.0.attn.q_norm.weight"  # Sana 1.5 / Sana Sprint: diffusers' converter has no mapping for it
# what the original files carry and diffusers' converter drops (it pops them unconditionally)
_DROPPED = ("pos_embed", "y_embedder.y_embedding")


def derive(shapes: dict) -> dict:
    """The transformer's config from its shapes (and the DC-AE's latent channels it needs)."""
    hidden, in_channels, patch = shapes[_X][0], shapes[_X][1], shapes[_X][2]
    final = shapes["final_layer.linear.weight"][0]
    if final % (patch * patch):
        raise ConfigMismatch(f"final_layer.linear.weight [{final}, {hidden}] is not {patch} x {patch} patches")
    inverted = shapes["blocks.0.mlp.inverted_conv.conv.weight"][0]  # GLUMBConv: gate and value, mlp_ratio x width
    caption, depth = shapes["y_embedder.y_proj.fc1.weight"][1], count_blocks(shapes, "blocks.")
    seen = f"{_X} {list(shapes[_X])}"
    return {"transformer": {
        "num_layers": (depth, f"{depth} blocks"),
        "in_channels": (in_channels, seen),
        "out_channels": (final // (patch * patch), f"final_layer.linear.weight [{final}, {hidden}]"),
        "patch_size": (patch, seen),
        "cross_attention_dim": (hidden, seen),
        "caption_channels": (caption, f"y_embedder.y_proj.fc1.weight [{hidden}, {caption}]"),
        "mlp_ratio": (inverted / (2 * hidden), f"blocks.0.mlp.inverted_conv.conv.weight [{inverted}, ...]: 2 x "
                                               f"mlp_ratio x {hidden}"),
    }, "vae": {"latent_channels": (in_channels, f"{seen}: latents of patch {patch}")}}


def check(configs: dict, source) -> None:
    """Both attentions' heads x head width are the width the weights have (linear attention keeps no per-head
    weights to tell them); the text encoder is as wide as the caption projection's input."""
    config = configs["transformer"]
    width = config["cross_attention_dim"]
    for heads, dim in (("num_attention_heads", "attention_head_dim"),
                       ("num_cross_attention_heads", "cross_attention_head_dim")):
        if config[heads] * config[dim] != width:
            raise ConfigMismatch(f"its blocks are {width} wide ({source('transformer', 'cross_attention_dim')}), but "
                                 f"{heads} {config[heads]} x {dim} {config[dim]} ({source('transformer', heads)}) is "
                                 f"{config[heads] * config[dim]}: the weights cannot tell Sana's attention heads; name "
                                 "a diffusers folder of this model in config_folders (models/diffusers)")
    check_text_width(configs, source, "caption_channels")


def prepare(tensors: dict, config: dict) -> dict:
    """diffusers' converter pops ``pos_embed`` and ``y_embedder.y_embedding`` (which it drops) without a default: a
    file saved without them gets empty stand-ins. The tensors pass through as they are (views)."""
    import torch

    out = {k.removeprefix(UNET_PREFIX): v for k, v in tensors.items()}
    for key in _DROPPED:
        out.setdefault(key, torch.zeros(0))
    return out


_FILES = {"configs": CONFIGS, "vae_file": "the Sana DC-AE (dc-ae-f32c32-sana-1.0's model.safetensors, mit-han-lab's "
                                         "names)", "derive": derive, "check": check, "prepare": prepare,
          "absent": (QK_NORM,)}

ARCHS = (
    Arch("sana-1600m", "Sana 1.6B", ((_KV, None), (_X, (2240, 32, 1, 1)), (_QKV, (6720, 2240))), _GEMMA, **_FILES),
    Arch("sana-600m", "Sana 0.6B", ((_KV, None), (_X, (1152, 32, 1, 1)), (_QKV, (3456, 1152))), _GEMMA, **_FILES),
    Arch("tiny-sana", "tiny Sana (built-in)", ((_KV, None), (_X, (16, 4, 1, 1)), (_QKV, (48, 16))), _GEMMA,
         tiny=True, **_FILES),
)
OTHER_VARIANTS = (
    (QK_NORM, None, "a Sana 1.5 or Sana Sprint model (QK-normed attention), which diffusers' Sana converter does not "
                    "read; its diffusers folder loads"),
)
