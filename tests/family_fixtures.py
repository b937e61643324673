"""Per-family fixtures: tiny pipelines and references computed by diffusers (or peft directly where diffusers
has no pipeline method). The family LoRA files are written by lora_fixtures.save_family_lora."""

from __future__ import annotations

import copy
import functools

import torch

from loradeck.core.families import FAMILIES
from loradeck.core.stacks.specs import GenerateParams

DENOISER_TARGETS = {"sd1": ["to_q", "to_k", "to_v", "to_out.0"], "sdxl": ["to_q", "to_k", "to_v", "to_out.0"],
                    "sd3": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj"],
                    "flux": ["to_q", "to_k", "to_v", "to_out.0", "proj_out"],
                    # linear_1: the approximator's (distilled_guidance_layer.layers.N), which only Chroma has
                    "chroma": ["to_q", "to_k", "to_v", "to_out.0", "proj_out", "linear_1"],
                    "amused": ["to_q", "to_k", "to_v", "to_out.0"],
                    # diffusers' Krea 2 DreamBooth script's targets, less the text-side ones (text_fusion blocks
                    # still match to_q... by suffix)
                    "krea2": ["to_q", "to_k", "to_v", "to_out.0", "to_gate", "ff.up", "ff.down", "img_in",
                              "time_mod_proj"],
                    "qwenimage": ["to_q", "to_k", "to_v", "to_out.0", "add_k_proj", "img_mlp.net.2", "img_mod.1"],
                    "zimage": ["to_q", "to_k", "to_v", "to_out.0", "w2"],
                    # FLUX.2: double-block attention, the fused single-block projections, a SwiGLU input
                    "flux2": ["to_q", "to_k", "to_v", "to_out.0", "to_qkv_mlp_proj", "ff.linear_in"],
                    "flux2dev": ["to_q", "to_k", "to_v", "to_out.0", "to_qkv_mlp_proj", "ff.linear_in"]}
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
# what diffusers' save_lora_weights accepts per family (Flux's T5 is not LoRA-able there; Chroma's only encoder is
# a T5, whose LoRA diffusers' load_lora_weights refuses: tests/test_family_chroma.py checks it against peft;
# FLUX.2's loader takes the transformer only)
SAVED_TEXT_ENCODERS = {"sd1": ("text_encoder",), "sdxl": ("text_encoder", "text_encoder_2"),
                       "sd3": ("text_encoder", "text_encoder_2"), "flux": ("text_encoder",),
                       "amused": ("text_encoder",), "chroma": (), "krea2": (),
                       "qwenimage": (), "zimage": (), "flux2": (), "flux2dev": ()}
# the keyword of a family's classifier-free guidance scale when it is not diffusers' usual guidance_scale
CFG_KEYWORD = {"qwenimage": "true_cfg_scale"}
# diffusers' guidance_scale for a cfg, per family where it is not the cfg itself: Z-Image's and Krea 2's pipelines
# compute pos + g * (pos - neg) and guide only when g > 0, so the usual cfg w is g = w - 1 (cfg 1: no guidance).
DIFFUSERS_GUIDANCE = {"zimage": lambda cfg: max(cfg - 1.0, 0.0), "krea2": lambda cfg: max(cfg - 1.0, 0.0)}
PARAMS = GenerateParams("a photo of a cat", "", seed=3, steps=3, cfg=4.0, width=64, height=64)


@functools.cache
def _base(key: str):
    pipe = FAMILIES[key].tiny()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def fresh(key: str):
    """A new copy of the family's tiny pipeline (built once per session)."""
    return copy.deepcopy(_base(key))


def diffusers_guidance(key: str, cfg: float) -> float:
    return DIFFUSERS_GUIDANCE.get(key, float)(cfg)


def render(key: str, pipe, params: GenerateParams = PARAMS) -> torch.Tensor:
    kwargs = FAMILIES[key].call(params, lambda step, total: None)
    with torch.inference_mode():
        return torch.from_numpy(pipe(**kwargs).images.copy())


def diffusers_reference(key: str, files: dict[str, str], weights: dict[str, dict], pipe=None):
    """A fresh pipeline (or ``pipe``) with ``files`` loaded and weighted by diffusers' own methods."""
    pipe = fresh(key) if pipe is None else pipe
    if key == "amused":
        return _amused_reference(pipe, files, weights)
    for name, path in files.items():
        pipe.load_lora_weights(path, adapter_name=name)
    pipe.set_adapters(list(files), [weights[n] for n in files])
    return pipe


def _amused_reference(pipe, files, weights):
    # AmusedPipeline has no LoRA methods; diffusers' component-level loaders are what works.
    from diffusers.loaders.lora_base import set_adapters_for_text_encoder
    from diffusers.loaders.lora_pipeline import AmusedLoraLoaderMixin

    for name, path in files.items():
        state, alphas = AmusedLoraLoaderMixin.lora_state_dict(path)
        pipe.transformer.load_lora_adapter(state, network_alphas=alphas, adapter_name=name, prefix="transformer")
        AmusedLoraLoaderMixin.load_lora_into_text_encoder(state, network_alphas=alphas,
                                                          text_encoder=pipe.text_encoder, adapter_name=name)
    names = list(files)
    pipe.transformer.set_adapters(names, [weights[n]["transformer"] for n in names])
    set_adapters_for_text_encoder(names, pipe.text_encoder, [weights[n]["text_encoder"] for n in names])
    return pipe
