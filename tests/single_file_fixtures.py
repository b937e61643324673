"""Original-layout single-file checkpoints of the tiny models, written offline with the inverse conversion
(original_layout.py), in the layouts ComfyUI users have: all-in-one files and transformer-only files with
separate text encoders (models/text_encoders, models/clip) and VAE (models/vae)."""

from __future__ import annotations

import os

import torch
from safetensors.torch import save_file

from original_layout import (
    auraflow_to_original,
    chroma_to_original,
    clip_to_ldm,
    clip_to_open_clip,
    flux_to_original,
    kandinsky5_to_original,
    krea2_to_original,
    lumina2_to_original,
    qwen3_to_comfy,
    qwenimage_to_original,
    sd3_to_original,
    t5_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
    zimage_to_original,
)

PREFIX = "model.diffusion_model."
# what real A1111/ComfyUI checkpoints also carry and loaders must ignore
JUNK = {"alphas_cumprod": torch.linspace(1, 0, 1000), "model_ema.decay": torch.tensor(0.9999),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": torch.arange(77)[None]}


def _up_with_attention(unet) -> set[int]:
    return {int(n.split(".")[1]) for n, _ in unet.named_modules()
            if n.startswith("up_blocks.") and ".attentions." in n}


def denoiser(key: str, pipe, prefix: str = PREFIX) -> dict:
    if key in ("sd1", "sdxl"):
        unet = pipe.unet
        return unet_to_ldm(unet.state_dict(), unet.config.layers_per_block, _up_with_attention(unet))
    convert = {"sd3": sd3_to_original, "flux": flux_to_original, "chroma": chroma_to_original,
               "zimage": zimage_to_original, "qwenimage": qwenimage_to_original,
               "krea2": krea2_to_original, "lumina2": lumina2_to_original,
               "kandinsky5": kandinsky5_to_original, "auraflow": auraflow_to_original}[key]
    return convert(pipe.transformer.state_dict(), prefix)


def encoders_in_file(key: str, pipe) -> dict:
    if key == "sd1":
        return clip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.transformer.")
    if key == "sdxl":
        return {**clip_to_ldm(pipe.text_encoder.state_dict(), "conditioner.embedders.0.transformer."),
                **clip_to_open_clip(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model.")}
    if key == "zimage":  # ComfyUI's checkpoints keep Qwen3-4B under text_encoders.qwen3_4b.transformer.
        return qwen3_to_comfy(pipe.text_encoder.state_dict(), "text_encoders.qwen3_4b.transformer.model.")
    out = clip_to_ldm(pipe.text_encoder.state_dict(), "text_encoders.clip_l.transformer.")
    if key == "sd3":
        out.update(clip_to_ldm(pipe.text_encoder_2.state_dict(), "text_encoders.clip_g.transformer."))
    else:
        out.update(t5_to_ldm(pipe.text_encoder_2.state_dict(), "text_encoders.t5xxl.transformer."))
    return out


def save(tensors: dict, path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, path)
    return path


def all_in_one(key: str, pipe, path: str, junk: bool = True) -> str:
    """Denoiser + VAE + text encoders in one file (SD1/SDXL always; SD3 "incl_clips"; Flux all-in-one)."""
    vae_prefix = "vae." if key in ("flux", "zimage") else "first_stage_model."
    tensors = {**denoiser(key, pipe), **vae_to_ldm(pipe.vae.state_dict(), vae_prefix), **encoders_in_file(key, pipe)}
    if junk:
        tensors.update(JUNK if key == "sd1" else {"alphas_cumprod": JUNK["alphas_cumprod"]})
    return save(tensors, path)


def split(key: str, pipe, models: str) -> str:
    """A transformer-only checkpoint (Flux: BFL's unprefixed keys, no VAE; Z-Image: ComfyUI's unprefixed keys, no
    VAE; SD3: with its VAE, as SAI ships sd3.5_large.safetensors) and the text encoders / VAE as separate files
    where ComfyUI users keep them."""
    name = f"tiny-{key}-transformer-only.safetensors"
    checkpoints = os.path.join(models, "checkpoints")
    encoders = os.path.join(models, "text_encoders")
    if key == "zimage":  # ComfyUI's split files: z_image_turbo_bf16, qwen_3_4b, ae
        save(denoiser(key, pipe, prefix=""), os.path.join(checkpoints, name))
        save(vae_to_ldm(pipe.vae.state_dict(), prefix=""), os.path.join(models, "vae", "ae.safetensors"))
        save(qwen3_to_comfy(pipe.text_encoder.state_dict()), os.path.join(encoders, "qwen_3_4b.safetensors"))
    elif key == "flux":
        save(denoiser(key, pipe, prefix=""), os.path.join(checkpoints, name))
        save(vae_to_ldm(pipe.vae.state_dict(), prefix=""), os.path.join(models, "vae", "ae.safetensors"))
        save(t5_to_ldm(pipe.text_encoder_2.state_dict(), ""), os.path.join(encoders, "t5xxl_tiny.safetensors"))
        save(clip_to_ldm(pipe.text_encoder.state_dict(), ""), os.path.join(models, "clip", "clip_l.safetensors"))
    else:
        save({**denoiser(key, pipe), **vae_to_ldm(pipe.vae.state_dict())}, os.path.join(checkpoints, name))
        save(clip_to_ldm(pipe.text_encoder.state_dict(), ""), os.path.join(encoders, "clip_l.safetensors"))
        save(clip_to_ldm(pipe.text_encoder_2.state_dict(), ""), os.path.join(encoders, "clip_g.safetensors"))
    return name
