"""Kandinsky 5.0 Image Lite split files: the denoiser alone (Kandinsky Lab's ``kandinsky5lite_t2i.safetensors``, which
ComfyUI loads from ``models/diffusion_models/`` as it is, or ComfyUI's fp8 / ComfyUI-GGUF files of it; bare or under
``model.diffusion_model.``), with the Qwen2.5-VL-7B text encoder (``models/text_encoders/qwen_2.5_vl_7b*.safetensors``:
Qwen's ``model.*`` / ``visual.*`` names, read by ``models/build.py: qwen_vl_model``, tokenized by ComfyUI's
``qwen25_tokenizer``), CLIP-L (``clip_l.safetensors``, ``text_encoder_2``: its pooled output) and the FLUX.1 VAE
(``ae.safetensors``: ComfyUI's ``Kandinsky5Image`` decodes with ``latent_formats.Flux``).

Names: Kandinsky Lab's modules (ComfyUI's ``comfy/ldm/kandinsky5/model.py`` keeps them) are diffusers'
``Kandinsky5Transformer3DModel`` names one for one (``visual_transformer_blocks.N.self_attention.to_query``...;
tests/test_model_files_kandinsky5.py checks both modules take the same state dict), so the family has no name table
and every quantized Linear lands on the Linear of its own name. diffusers has no single-file loader for this class:
``build_transformer`` (the row's builder) makes it on the meta device and assigns the tensors.

Any size: the transformer's config is read off the weights (``derive``: width, time width, FFN width, text widths,
text and visual depth, latent channels), as ComfyUI's model detection does (``comfy/model_detection.py``: the
``cross_attention.key_norm`` marker, ``visual_embeddings.in_layer`` for the width); the RoPE axes come from the shipped
config or a config folder (they must add up to the head width, ``query_norm``'s: ``prepare``). Kandinsky 5.0 Video
(Lite and Pro) and the image-editing model have the same keys with a visual condition (``visual_embeddings.in_layer``
takes 132 = 4 x (2 x 16 + 1) inputs): named, not loaded (their pipelines are video / edit pipelines).

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ...errors import PipelineLoadError
from ...models.arch import CLIP_L, UNET_PREFIX, Arch, ConfigMismatch, Encoder, check_text_width, count_blocks

if TYPE_CHECKING:  # the CLI and the sweep read the family table without torch
    import torch

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

# ComfyUI's checkpoints keep the text encoders under text_encoders.qwen25_7b.transformer. / clip_l.transformer.
_ENCODERS = (Encoder("text_encoder", "qwen25_vl_7b", ("text_encoders.qwen25_7b.transformer.",)),
             Encoder("text_encoder_2", CLIP_L.kind, CLIP_L.prefixes))
_KEY = "visual_transformer_blocks.0.cross_attention.key_norm.weight"  # ComfyUI's own Kandinsky 5 test
_VISUAL, _MOD = "visual_embeddings.in_layer.weight", "visual_transformer_blocks.0.visual_modulation.out_layer.weight"
_PATCH = (1, 2, 2)  # every Kandinsky 5 model's (ComfyUI's default; the weights cannot tell its axes apart)


def derive(shapes: dict) -> dict:
    """The transformer's config from its shapes (and what the text encoders and the VAE must be)."""
    width, visual = shapes[_VISUAL]
    head = shapes[_KEY][0]
    patch = _PATCH[0] * _PATCH[1] * _PATCH[2]
    if width % head:
        raise ConfigMismatch(f"its width {width} ({_VISUAL} [{width}, {visual}]) is no whole number of heads of "
                             f"{_KEY} [{head}]")
    out = shapes["out_layer.out_layer.weight"][0]
    if visual % patch or out % patch:
        raise ConfigMismatch(f"{_VISUAL} [..., {visual}] and out_layer.out_layer.weight [{out}, ...] are not 1 x 2 x 2 "
                             "patches of latent channels")
    time = shapes["time_embeddings.in_layer.weight"][0]
    text, pooled = shapes["text_embeddings.in_layer.weight"][1], shapes["pooled_text_embeddings.in_layer.weight"][1]
    ff = shapes["visual_transformer_blocks.0.feed_forward.in_layer.weight"][0]
    texts = count_blocks(shapes, "text_transformer_blocks.")
    visuals = count_blocks(shapes, "visual_transformer_blocks.")
    latent = (visual // patch, f"{_VISUAL} [{width}, {visual}]: 1 x 2 x 2 patches")
    return {"transformer": {
        "model_dim": (width, f"{_VISUAL} [{width}, {visual}]"),
        "time_dim": (time, f"time_embeddings.in_layer.weight [{time}, {width}]"),
        "ff_dim": (ff, f"visual_transformer_blocks.0.feed_forward.in_layer.weight [{ff}, {width}]"),
        "in_text_dim": (text, f"text_embeddings.in_layer.weight [{width}, {text}]"),
        "in_text_dim2": (pooled, f"pooled_text_embeddings.in_layer.weight [{time}, {pooled}]"),
        "in_visual_dim": latent,
        "out_visual_dim": (out // patch, f"out_layer.out_layer.weight [{out}, {width}]: 1 x 2 x 2 patches"),
        "num_text_blocks": (texts, f"{texts} text_transformer_blocks"),
        "num_visual_blocks": (visuals, f"{visuals} visual_transformer_blocks"),
        "visual_cond": (False, f"{_VISUAL} [{width}, {visual}]: no visual condition (text-to-image)"),
    }, "vae": {"latent_channels": latent}}


def check(configs: dict, source) -> None:
    """The RoPE axes (the head width is their sum) divide the width; the text encoders are as wide as the denoiser's
    text inputs. That the axes add up to the heads the weights have is checked at the build (``prepare``): the head
    width is no config value of this class."""
    config = configs["transformer"]
    axes, width = list(config["axes_dims"]), config["model_dim"]
    if width % sum(axes):
        raise ConfigMismatch(f"its width {width} ({source('transformer', 'model_dim')}) is no whole number of heads "
                             f"of sum(axes_dims {axes}) = {sum(axes)} ({source('transformer', 'axes_dims')}): the "
                             "weights cannot tell RoPE's axes; name a diffusers folder of this model in config_folders "
                             "(models/diffusers)")
    check_text_width(configs, source, "in_text_dim")
    clip, pooled = configs["text_encoder_2"].get("hidden_size"), config["in_text_dim2"]
    if clip != pooled:
        raise ConfigMismatch(f"its denoiser needs text_encoder_2 with hidden_size {pooled} "
                             f"({source('transformer', 'in_text_dim2')}), but {source('text_encoder_2', 'hidden_size')}"
                             f" has hidden_size {clip}: name a diffusers folder of this model in config_folders "
                             "(models/diffusers)")


def prepare(tensors: dict, config: dict) -> dict:
    """The tensors in diffusers' names (a ComfyUI checkpoint's or prefixed file's ``model.diffusion_model.`` goes;
    views, the names are the same), after checking that the config's RoPE axes add up to the heads the weights have
    (every block's ``query_norm`` is one head wide; the weights cannot tell the axes themselves)."""
    out = {k.removeprefix(UNET_PREFIX): v for k, v in tensors.items()}
    head, axes = out.get(_KEY), list(config["axes_dims"])
    if head is not None and head.ndim == 1 and head.shape[0] != sum(axes):
        raise PipelineLoadError(f"its attention heads are {head.shape[0]} wide (the denoiser's {_KEY} "
                                f"[{head.shape[0]}]), but axes_dims {axes} of its config adds up to {sum(axes)}: the "
                                "weights cannot tell RoPE's axes; name a diffusers folder of this model in "
                                "config_folders (models/diffusers)")
    return out


def build_transformer(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    """``Kandinsky5Transformer3DModel`` from tensors in its own names (diffusers has no single-file loader for it):
    made with its parameters on the meta device (its RoPE buffers computed) and given the tensors; a missing weight
    stays on the meta device and is named by the caller's completeness check."""
    from ...models.quantized.loading import _parameters_on_meta

    with _parameters_on_meta():
        model = cls.from_config(cls.load_config(config_dir, subfolder=component))
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    _, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected:
        raise PipelineLoadError(f"the {component} has {len(unexpected)} weights a {cls.__name__} of this size does "
                                f"not, e.g. {', '.join(sorted(unexpected)[:3])}")
    return model.eval()


_FILES = {"configs": CONFIGS, "vae_file": "ae.safetensors (the FLUX.1 VAE)", "derive": derive, "check": check,
          "prepare": prepare, "builders": {"transformer": build_transformer}}

ARCHS = (
    Arch("kandinsky5-lite", "Kandinsky 5.0 Image Lite", ((_KEY, None), (_VISUAL, (2560, 64)), (_MOD, (23040, 512))),
         _ENCODERS, **_FILES),
    Arch("tiny-kandinsky5", "tiny Kandinsky 5 (built-in)", ((_KEY, None), (_VISUAL, (32, 64)), (_MOD, (288, 16))),
         _ENCODERS, tiny=True, **_FILES),
)
OTHER_VARIANTS = (
    (_VISUAL, lambda s: len(s) == 2 and s[1] % 4 == 0 and (s[1] // 4) % 2 == 1,
     "a Kandinsky 5.0 Video or image-editing model (its visual input carries a visual condition)"),
)
