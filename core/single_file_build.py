"""Building each pipeline component from original-layout weights: diffusers does every conversion.

Models come from diffusers' ``from_single_file`` (UNet, VAE, SD3/Flux transformers) and its single-file CLIP
and T5 loaders, each configured from the pack's local config folder (``config=``, never the Hub), each given
only its own keys (so two same-width tiny CLIP encoders cannot be mistaken for each other).
"""

from __future__ import annotations

import itertools
import logging

import torch

from .errors import PipelineLoadError
from .single_file_arch import UNET_PREFIX

log = logging.getLogger(__name__)

FLUX1_WIDTH = 3072  # diffusers' Flux converter splits single_blocks.N.linear1 with FLUX.1's fixed sizes


def diffusers_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    if cls.__name__ == "FluxTransformer2DModel":
        tensors = flux_state_dict(tensors, cls.load_config(config_dir, subfolder=component))
    return cls.from_single_file(tensors, config=config_dir, subfolder=component, local_files_only=True,
                                torch_dtype=dtype)


def flux_state_dict(tensors: dict, config: dict) -> dict:
    """Original Flux keys -> diffusers keys by diffusers' own converter. It hard-codes FLUX.1's width (3072) when
    it splits ``single_blocks.N.linear1`` into q, k, v and mlp; for other widths (the tiny model) it gets
    placeholders of FLUX.1's size for those tensors and the real ones are split here by the model's width."""
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    inner = config["num_attention_heads"] * config["attention_head_dim"]
    if inner == FLUX1_WIDTH:
        return tensors
    real = {k: v for k, v in tensors.items() if ".linear1." in k and "single_blocks." in k}
    fake = {k: torch.empty((3 * FLUX1_WIDTH + 4 * FLUX1_WIDTH, *v.shape[1:]), device="meta") for k, v in real.items()}
    converted = convert_flux_transformer_checkpoint_to_diffusers({**tensors, **fake})
    for key, tensor in real.items():
        block, kind = key.removeprefix(UNET_PREFIX).split(".")[1], key.rsplit(".", 1)[1]
        parts = torch.split(tensor, (inner, inner, inner, tensor.shape[0] - 3 * inner))
        for name, part in zip(("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), parts, strict=True):
            converted[f"single_transformer_blocks.{block}.{name}.{kind}"] = part.clone()
    return converted


def clip_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    return create_diffusers_clip_model_from_ldm(cls, checkpoint=tensors, subfolder=component, config=config_dir,
                                                torch_dtype=dtype, local_files_only=True)


def t5_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    from diffusers.loaders.single_file_utils import create_diffusers_t5_model_from_checkpoint

    model = create_diffusers_t5_model_from_checkpoint(cls, checkpoint=tensors, subfolder=component,
                                                      config=config_dir, torch_dtype=dtype, local_files_only=True)
    # T5 files keep the embedding once (shared.weight); diffusers loads into an empty model without re-tying,
    # which would leave encoder.embed_tokens empty. It also leaves the model in training mode (dropout on).
    model.tie_weights()
    return model.eval()


def scheduler(cls, config_dir: str, overrides: dict):
    return cls.from_pretrained(config_dir, subfolder="scheduler", **overrides)


def builder_for(cls):
    """How a component class is built from original-layout weights (None: not a weight-bearing model)."""
    import diffusers
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, T5EncoderModel

    if issubclass(cls, diffusers.ModelMixin):
        return diffusers_model
    if issubclass(cls, (CLIPTextModel, CLIPTextModelWithProjection)):
        return clip_model
    if issubclass(cls, T5EncoderModel):
        return t5_model
    return None


def component_class(library: str, name: str):
    import importlib

    return getattr(importlib.import_module(library), name)


def check_complete(model, component: str, label: str) -> None:
    """Weights diffusers found no tensor for stay on the meta device: name them instead of failing later."""
    empty = [n for n, t in itertools.chain(model.named_parameters(), model.named_buffers()) if t.device.type == "meta"]
    if empty:
        raise PipelineLoadError(f"the {component} (from {label}) lacks {len(empty)} weights this architecture has, "
                                f"e.g. {', '.join(empty[:3])}; the file is incomplete or a variant LoRA Deck does "
                                "not know")
