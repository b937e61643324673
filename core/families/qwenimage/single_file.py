"""Qwen-Image split files: ComfyUI's ``models/diffusion_models/qwen_image*.safetensors`` (bf16, fp8 ``_scaled`` /
comfy_quant, or ComfyUI-GGUF's ``.gguf``), transformer keys in diffusers' own names (``transformer_blocks.0.img_mod.1``;
bare or under ``model.diffusion_model.``), which diffusers' ``QwenImageTransformer2DModel.from_single_file`` reads as
they are; with the Qwen2.5-VL-7B text encoder (``models/text_encoders/qwen_2.5_vl_7b*.safetensors``: Qwen's original
names ``model.layers.*`` / ``visual.*``, read by ``models/build.py: qwen_vl_model``), its Qwen2 tokenizer (ComfyUI's
``comfy/text_encoders/qwen25_tokenizer``: the same vocab) and the VAE in the Wan 2.1 layout
(``models/vae/qwen_image_vae.safetensors``: ``models/wan_vae.py``).

Any size: the transformer's config is read off the weights (``derive``: depth, width, heads, text width, channels), as
ComfyUI's model detection does (``comfy/model_detection.py``: ``txt_norm.weight`` marks Qwen-Image, ``img_in`` gives
the input channels, the block count the depth); the RoPE axes come from the shipped config or a config folder
(``check``: they must add up to the head width).

Qwen-Image-Edit and Edit-2509 files have the same keys and shapes as the text-to-image model, so a file cannot tell
them apart: a split file loads in the text-to-image class (QwenImagePipeline; with an image: img2img). Edit-2511
(``__index_timestep_zero__``) and Qwen-Image-Layered (``time_text_embed.addition_t_embedding``) need their own
pipelines' settings and are named, not loaded.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import UNET_PREFIX, Arch, ConfigMismatch, Encoder, count_blocks

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

# ComfyUI's all-in-one Qwen-Image files keep the text encoder under text_encoders.qwen25_7b.transformer.
_QWEN25_VL = (Encoder("text_encoder", "qwen25_vl_7b", ("text_encoders.qwen25_7b.transformer.",)),)
_IMG_IN, _MOD, _NORM = "img_in.weight", "transformer_blocks.0.img_mod.1.weight", "txt_norm.weight"
_EDIT_2511, _LAYERED = "__index_timestep_zero__", "time_text_embed.addition_t_embedding.weight"


def derive(shapes: dict) -> dict:
    """The transformer's config from its shapes (and the Wan VAE's latent channels it needs)."""
    inner, in_channels = shapes[_IMG_IN]
    head = shapes["transformer_blocks.0.attn.norm_q.weight"]  # a missing key: "lacks" (models/configs.py)
    if inner % head[0]:
        raise ConfigMismatch(f"its blocks' attention width {inner} (img_in.weight [{inner}, {in_channels}]) is no "
                             f"whole number of heads of transformer_blocks.0.attn.norm_q.weight {list(head)}")
    out = shapes["proj_out.weight"][0]
    if out % 4 or in_channels % 4:
        raise ConfigMismatch(f"proj_out.weight [{out}, ...] and img_in.weight [..., {in_channels}] are not 2 x 2 "
                             "patches of latent channels")
    joint, depth = shapes["txt_in.weight"][1], count_blocks(shapes, "transformer_blocks.")
    return {"transformer": {
        "num_layers": (depth, f"{depth} transformer_blocks"),
        "attention_head_dim": (head[0], f"transformer_blocks.0.attn.norm_q.weight [{head[0]}]"),
        "num_attention_heads": (inner // head[0], f"img_in.weight [{inner}, {in_channels}] / head width {head[0]}"),
        "in_channels": (in_channels, f"img_in.weight [{inner}, {in_channels}]"),
        "out_channels": (out // 4, f"proj_out.weight [{out}, {inner}]: 2 x 2 patches"),
        "joint_attention_dim": (joint, f"txt_in.weight [{inner}, {joint}]"),
    }, "vae": {"z_dim": (out // 4, f"proj_out.weight [{out}, {inner}]: 2 x 2 patches")}}


def prepare(tensors: dict, config: dict) -> dict:
    """diffusers' single-file mapping for this class is the identity: a ComfyUI checkpoint's or prefixed file's
    ``model.diffusion_model.`` goes here (the tensors pass through as they are, views)."""
    return {k.removeprefix(UNET_PREFIX): v for k, v in tensors.items()}


def check(configs: dict, source) -> None:
    transformer = configs["transformer"]
    axes, head = transformer["axes_dims_rope"], transformer["attention_head_dim"]
    if sum(axes) != head:
        raise ConfigMismatch(f"its RoPE axes_dims_rope {list(axes)} ({source('transformer', 'axes_dims_rope')}) "
                             f"do not add up to the head width {head} "
                             f"({source('transformer', 'attention_head_dim')}); name a diffusers folder of this "
                             "model in config_folders (models/diffusers)")
    text = configs["text_encoder"].get("text_config", configs["text_encoder"])
    if text.get("hidden_size") != transformer["joint_attention_dim"]:
        raise ConfigMismatch(f"its denoiser needs text_encoder with hidden_size {transformer['joint_attention_dim']} "
                             f"({source('transformer', 'joint_attention_dim')}), but "
                             f"{source('text_encoder', 'hidden_size')} has hidden_size {text.get('hidden_size')}: "
                             "name a diffusers folder of this model in config_folders (models/diffusers)")


_FILES = {"configs": CONFIGS, "vae_file": "qwen_image_vae.safetensors (the Qwen-Image VAE, Wan 2.1 layout)",
          "absent": (_EDIT_2511, _LAYERED), "derive": derive, "check": check, "prepare": prepare}

ARCHS = (
    Arch("qwen-image", "Qwen-Image", ((_NORM, None), (_IMG_IN, (3072, 64)), (_MOD, (18432, 3072))), _QWEN25_VL,
         **_FILES),
    Arch("tiny-qwenimage", "tiny Qwen-Image (built-in)", ((_NORM, None), (_IMG_IN, (32, 64)), (_MOD, (192, 32))),
         _QWEN25_VL, tiny=True, **_FILES),
)
OTHER_VARIANTS = (
    (_EDIT_2511, None, "a Qwen-Image-Edit-2511 model (load it as a diffusers folder in models/diffusers)"),
    (_LAYERED, None, "a Qwen-Image-Layered model"),
    ("txt_in.text_norm.weight", None, "a Qwen-Image 2.1 model"),
)
