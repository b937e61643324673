"""Building each pipeline component from original-layout weights: diffusers does every conversion.

Models come from diffusers' ``from_single_file`` (UNet, VAE, SD3/Flux/Z-Image transformers) and its single-file
CLIP and T5 loaders, Qwen3 / Qwen-VL text encoders from their transformers or original names (``qwen3_model``,
``qwen_vl_model``), CLIP vision image encoders (``clip_vision_model``), Wan-layout VAEs (Wan 2.1 / 2.2,
Qwen-Image's) by diffusers' Wan VAE converter (``models.wan_vae``), each configured from the pack's local config
folder (``config=``, never the Hub), each given only its own keys (so two same-width tiny CLIP encoders cannot be
mistaken for each other).
"""

from __future__ import annotations

import itertools
import logging
import os

import torch

from ..errors import PipelineLoadError

log = logging.getLogger(__name__)


def text_state(component: str, tensors: dict, dtype: torch.dtype, what: str) -> dict:
    """A transformers text model's weights (``embed_tokens.weight``, ``layers.N...``, ``norm.weight``) without the
    prefix the file gives them (ComfyUI's ``model.``, a checkpoint's ``text_encoders.<kind>.transformer.model.``), in
    ``dtype``: what the Qwen3, Gemma 2, Mistral, Ministral 3 and Llama builders load. Refused, naming ``what``, without
    an embedding."""
    embed = next((k for k in tensors if k.endswith("embed_tokens.weight")), None)
    if embed is None:
        raise PipelineLoadError(f"the {component} holds no embed_tokens.weight; it is not a {what}")
    prefix = embed[: -len("embed_tokens.weight")]
    return {k[len(prefix):]: v.to(dtype) for k, v in tensors.items() if k.startswith(prefix)}


def diffusers_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    return cls.from_single_file(tensors, config=config_dir, subfolder=component, local_files_only=True,
                                torch_dtype=dtype)


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


def qwen3_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    """A transformers Qwen3Model from its weights under any prefix (ComfyUI's ``model.``, a checkpoint's
    ``text_encoders.qwen3_4b.transformer.model.``): diffusers has no single-file loader for it. Built on the meta
    device and given the file's tensors (no random initialisation of billions of weights); the rotary
    frequencies, a buffer no file holds, are computed as the model's own constructor does."""
    state = text_state(component, tensors, dtype, "Qwen3 text encoder")
    config = cls.config_class.from_json_file(os.path.join(config_dir, component, "config.json"))
    with torch.device("meta"):
        model = cls(config)
    inner = model.model if hasattr(model, "lm_head") else model  # Qwen3ForCausalLM (FLUX.2 [klein]'s) wraps one
    missing, unexpected = inner.load_state_dict(state, strict=False, assign=True)
    if unexpected:
        raise PipelineLoadError(f"the {component} has {len(unexpected)} weights a {cls.__name__} of this "
                                f"architecture does not, e.g. {', '.join(unexpected[:3])}")
    inner.rotary_emb = type(inner.rotary_emb)(config=config)  # non-persistent: computed, never stored
    if inner is not model:
        if not config.tie_word_embeddings:
            raise PipelineLoadError(f"the {component} is a {cls.__name__} with its own lm_head, which text-encoder "
                                    "files do not hold; its config must tie it to the embeddings")
        model.tie_weights()  # the LM head no pipeline reads is the embedding, as in the tied model
    return model.eval()


def gemma2_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    """A transformers Gemma2Model (Lumina 2's and Sana's text encoder) from its weights under any prefix (ComfyUI's
    ``gemma_2_2b`` files: ``model.``; its checkpoints: ``text_encoders.gemma2_2b.transformer.model.``), made with its
    parameters on the meta device and its buffers (rotary frequencies, the embedding scale: never stored) computed as
    its constructor does; every weight of its config required."""
    from .quantized.loading import _parameters_on_meta

    state = text_state(component, tensors, dtype, "Gemma 2 text encoder")
    config = cls.config_class.from_json_file(os.path.join(config_dir, component, "config.json"))
    with _parameters_on_meta():
        model = cls(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected or missing:  # a parameter left on the meta device would fail only when the pipeline runs
        raise PipelineLoadError(f"the {component} does not hold the Gemma 2 model of its config: {len(missing)} "
                                f"weights missing ({', '.join(sorted(missing)[:3])}), {len(unexpected)} unexpected "
                                f"({', '.join(sorted(unexpected)[:3])})")
    return model.eval()


def clip_vision_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    """A transformers ``CLIPVisionModel`` from ComfyUI's clip_vision file (transformers' names, ``vision_model.``
    or not), its projection and any layers beyond the config's depth left out, every weight of the model required."""
    from accelerate import init_empty_weights

    config = cls.config_class.from_json_file(os.path.join(config_dir, component, "config.json"))
    with init_empty_weights():  # parameters on the meta device, buffers (position ids) computed
        model = cls(config)
    own = set(model.state_dict())
    state = {}
    for key, value in tensors.items():
        name = key if key in own else key.removeprefix("vision_model.")
        if name in own:
            state[name] = value.to(dtype)
    missing = own - set(state)
    if missing:
        raise PipelineLoadError(f"the {component} lacks {len(missing)} weights of a {cls.__name__} of this size, "
                                f"e.g. {', '.join(sorted(missing)[:3])}")
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def qwen_vl_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    """A transformers Qwen-VL text encoder (``Qwen2_5_VLForConditionalGeneration``: Qwen-Image; ``Qwen3VLModel``:
    Krea 2) from its weights in Qwen's original names (``model.layers.*``, ``visual.*``, ``lm_head.*``: ComfyUI's
    files) or transformers' (``model.language_model.*``, ``model.visual.*``), the part's prefix already removed.
    Made with its parameters on the meta device (buffers computed as its constructor does) and given the tensors.
    A file without ``lm_head`` (ComfyUI's model has none: the pipelines read hidden states only) gets the input
    embedding in its place, as a tied model would; the logits it feeds are never read."""
    from .quantized.loading import _parameters_on_meta

    own = "model.language_model." if "ForConditionalGeneration" in cls.__name__ else "language_model."
    visual, head = own.replace("language_model.", "visual."), "lm_head." if own.startswith("model.") else None
    state = {}
    for key, value in tensors.items():
        for tail, target in (("model.language_model.", own), ("language_model.", own), ("model.visual.", visual),
                             ("visual.", visual), ("lm_head.", head), ("model.", own)):
            if key.startswith(tail):
                if target is not None:
                    state[target + key[len(tail):]] = value.to(dtype)
                break
        else:
            state[key] = value
    config = cls.config_class.from_json_file(os.path.join(config_dir, component, "config.json"))
    with _parameters_on_meta():
        model = cls(config)
    if head and head + "weight" not in state and own + "embed_tokens.weight" in state:
        state[head + "weight"] = state[own + "embed_tokens.weight"]
    _, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected:
        raise PipelineLoadError(f"the {component} has {len(unexpected)} weights a {cls.__name__} of this "
                                f"architecture does not, e.g. {', '.join(sorted(unexpected)[:3])}")
    return model.eval()  # buffers (rotary frequencies) stay float32, as transformers' from_pretrained keeps them


def scheduler(cls, config_dir: str, overrides: dict):
    return cls.from_pretrained(config_dir, subfolder="scheduler", **overrides)


def builder_for(cls):
    """How a component class is built from original-layout weights (None: not a weight-bearing model)."""
    import diffusers
    from transformers import (
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPVisionModel,
        Qwen3ForCausalLM,
        Qwen3Model,
        T5EncoderModel,
        UMT5EncoderModel,
    )

    from . import wan_vae

    if issubclass(cls, (diffusers.AutoencoderKLWan, diffusers.AutoencoderKLQwenImage)):
        return wan_vae.build
    if issubclass(cls, diffusers.ModelMixin):
        return diffusers_model
    if issubclass(cls, (CLIPTextModel, CLIPTextModelWithProjection)):
        return clip_model
    if issubclass(cls, (T5EncoderModel, UMT5EncoderModel)):  # diffusers' T5 loader takes UMT5's same names
        return t5_model
    if issubclass(cls, (Qwen3Model, Qwen3ForCausalLM)):
        return qwen3_model
    if cls.__name__ == "Gemma2Model":  # Lumina 2's and Sana's
        return gemma2_model
    if issubclass(cls, CLIPVisionModel):
        return clip_vision_model
    if cls.__name__ in ("Qwen2_5_VLForConditionalGeneration", "Qwen3VLModel", "Qwen3VLForConditionalGeneration"):
        return qwen_vl_model
    return None


def component_class(library: str, name: str):
    import importlib

    return getattr(importlib.import_module(library), name)


def meta_component(config_dir: str, name: str):
    """Component ``name`` of a config folder (a shipped architecture's ``configs/<arch>``) built on the meta device:
    its module names and shapes, no memory (the real-architecture checks and the key-map recorder use it)."""
    import json

    import diffusers

    with open(os.path.join(config_dir, "model_index.json"), encoding="utf-8") as f:
        cls = component_class(*json.load(f)[name])
    with torch.device("meta"):
        if issubclass(cls, diffusers.ModelMixin):
            return cls.from_config(cls.load_config(config_dir, subfolder=name))
        return cls(cls.config_class.from_pretrained(config_dir, subfolder=name))


def check_complete(model, component: str, label: str) -> None:
    """Weights diffusers found no tensor for stay on the meta device: name them instead of failing later."""
    empty = [n for n, t in itertools.chain(model.named_parameters(), model.named_buffers()) if t.device.type == "meta"]
    if empty:
        raise PipelineLoadError(f"the {component} (from {label}) lacks {len(empty)} weights this architecture has, "
                                f"e.g. {', '.join(empty[:3])}; the file is incomplete or a variant LoRA Deck does "
                                "not know")
