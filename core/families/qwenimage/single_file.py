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

Qwen-Image-Edit and Edit-2509 files have the same keys and shapes as the text-to-image model (ComfyUI runs them as one
model class; its edit nodes make the difference). Only the file name can break that tie: a file whose name says
``edit`` loads in diffusers' edit class (``2509`` / ``2511`` / ``plus`` in the name, or Edit-2511's own marker
``__index_timestep_zero__``: QwenImageEditPlusPipeline, with ``zero_cond_t`` for 2511; else QwenImageEditPipeline),
with the Edit repos' image processor over the tokenizer (``processor.file_components``); any other loads in the
text-to-image class (with an image: img2img). Qwen-Image-Layered (``time_text_embed.addition_t_embedding``) is named,
not loaded.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import UNET_PREFIX, Arch, ConfigMismatch, Encoder, check_rope_axes, check_text_width, count_blocks

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


def derive_edit(shapes: dict) -> dict:
    """``derive``, plus Edit-2511's ``zero_cond_t`` from its marker (diffusers' name for ComfyUI's
    ``index_timestep_zero`` reference method)."""
    derived = derive(shapes)
    if _EDIT_2511 in shapes:
        derived["transformer"]["zero_cond_t"] = (True, f"{_EDIT_2511} present (Edit-2511)")
    return derived


def prepare(tensors: dict, config: dict) -> dict:
    """diffusers' single-file mapping for this class is the identity: a ComfyUI checkpoint's or prefixed file's
    ``model.diffusion_model.`` goes here, and Edit-2511's marker (no weight) is dropped (the tensors pass through as
    they are, views)."""
    return {k.removeprefix(UNET_PREFIX): v for k, v in tensors.items() if not k.endswith(_EDIT_2511)}


def _named_edit(header) -> bool:
    return "edit" in os.path.basename(header.path).lower()


def _edit_plus(header, arch) -> bool:
    """Edit-2509 / 2511 (QwenImageEditPlusPipeline): 2511's marker, or an edit file named for the Plus releases."""
    name = os.path.basename(header.path).lower()
    return header.denoiser_shape(_EDIT_2511) is not None or (
        _named_edit(header) and any(t in name for t in ("2509", "2511", "plus")))


def _edit(header, arch) -> bool:
    """The first Qwen-Image-Edit (QwenImageEditPipeline): an edit file named for no later release."""
    return _named_edit(header) and not _edit_plus(header, arch)


def _text_to_image(header, arch) -> bool:
    return not _named_edit(header)


def check(configs: dict, source) -> None:
    """RoPE's axes add up to the head width; the text encoder is as wide as the denoiser's text input."""
    check_rope_axes(configs, source)
    check_text_width(configs, source, "joint_attention_dim")


_FILES = {"configs": CONFIGS, "vae_file": "qwen_image_vae.safetensors (the Qwen-Image VAE, Wan 2.1 layout)",
          "check": check, "prepare": prepare}
_REAL = ((_NORM, None), (_IMG_IN, (3072, 64)), (_MOD, (18432, 3072)))
_TINY = ((_NORM, None), (_IMG_IN, (32, 64)), (_MOD, (192, 32)))

ARCHS = (  # the edit rows first: a file's name decides between rows of equal keys
    Arch("qwen-image-edit-plus", "Qwen-Image-Edit-2509/2511", _REAL, _QWEN25_VL, absent=(_LAYERED,),
         rule=_edit_plus, derive=derive_edit, **_FILES),
    Arch("qwen-image-edit", "Qwen-Image-Edit", _REAL, _QWEN25_VL, absent=(_EDIT_2511, _LAYERED), rule=_edit,
         derive=derive, **_FILES),
    Arch("tiny-qwenimage-edit", "tiny Qwen-Image-Edit (built-in)", _TINY, _QWEN25_VL, absent=(_LAYERED,),
         rule=lambda header, arch: _named_edit(header) or header.denoiser_shape(_EDIT_2511) is not None,
         derive=derive_edit, tiny=True, **_FILES),
    Arch("qwen-image", "Qwen-Image", _REAL, _QWEN25_VL, absent=(_EDIT_2511, _LAYERED), rule=_text_to_image,
         derive=derive, **_FILES),
    Arch("tiny-qwenimage", "tiny Qwen-Image (built-in)", _TINY, _QWEN25_VL, absent=(_EDIT_2511, _LAYERED),
         rule=_text_to_image, derive=derive, tiny=True, **_FILES),
)
OTHER_VARIANTS = (
    (_LAYERED, None, "a Qwen-Image-Layered model"),
    ("txt_in.text_norm.weight", None, "a Qwen-Image 2.1 model"),
)
