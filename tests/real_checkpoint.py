"""A real-size SD 1.5-architecture checkpoint with seeded random weights, for the live ComfyUI tests.

Built from the pack's shipped config (core/families/sd1/configs/sd15: UNet, VAE, CLIP-L) with random weights
from a fixed seed, written in the original single-file layout (original_layout.py) as float16, so ComfyUI
detects it by its real shapes as it detects SD 1.5. One component at a time, so the build holds about one
component in float32 (the UNet: 3.4 GB) besides the float16 file being assembled (2.1 GB). Nothing downloaded.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os

import torch
from safetensors.torch import save_file

from loradeck.core.families import SINGLE_FILE_ARCHS
from original_layout import clip_to_ldm, unet_to_ldm, vae_to_ldm

ARCH = next(a for a in SINGLE_FILE_ARCHS if a.key == "sd15")
SEED = 0


def _component(name: str, seed: int):
    import diffusers

    from loradeck.core.models.build import component_class

    with open(os.path.join(ARCH.config_dir, "model_index.json"), encoding="utf-8") as f:
        cls = component_class(*json.load(f)[name])
    torch.manual_seed(seed)
    if issubclass(cls, diffusers.ModelMixin):
        return cls.from_config(cls.load_config(ARCH.config_dir, subfolder=name))
    return cls(cls.config_class.from_pretrained(ARCH.config_dir, subfolder=name))


def _half(tensors: dict) -> dict:
    return {k: v.detach().to(torch.float16).contiguous() for k, v in tensors.items()}


def build(path: str, seed: int = SEED) -> str:
    """Write the checkpoint to ``path`` (model.diffusion_model.*, first_stage_model.*, cond_stage_model.*)."""
    tensors = {}
    for offset, name in enumerate(("unet", "vae", "text_encoder")):
        model = _component(name, seed + offset)
        sd = model.state_dict()
        if name == "unet":
            ups = {int(n.split(".")[1]) for n, _ in model.named_modules() if n.startswith("up_blocks.")
                   and ".attentions." in n}
            part = unet_to_ldm(sd, model.config.layers_per_block, ups)
        elif name == "vae":
            part = vae_to_ldm(sd)
        else:
            part = clip_to_ldm({k: v for k, v in sd.items() if "position_ids" not in k},
                               "cond_stage_model.transformer.")
        tensors.update(_half(part))
        del model, sd, part
        gc.collect()
    save_file(tensors, path, metadata={"loradeck": f"random sd15 architecture, seed {seed}"})
    return path


def cache_key(seed: int = SEED, extra: str = "") -> str:
    """Changes with the config files, the seed and torch (whose initialisers draw the random weights)."""
    digest = hashlib.sha256(f"{seed}:{torch.__version__}:{extra}".encode())
    for root, _, files in sorted(os.walk(ARCH.config_dir)):
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as f:
                digest.update(name.encode() + f.read())
    return digest.hexdigest()[:16]


def cached(folder: str, seed: int = SEED, flux: bool = False) -> str:
    """The SD 1.5 checkpoint (``flux``: the small Flux transformer) under ``folder``, built once per cache key."""
    stem, extra = ("small-flux", json.dumps(FLUX_SMALL, sort_keys=True)) if flux else ("random-sd15", "")
    path = os.path.join(folder, f"{stem}-{cache_key(seed, extra)}.safetensors")
    if not os.path.isfile(path):
        os.makedirs(folder, exist_ok=True)
        tmp = path + ".building"
        (build_flux if flux else build)(tmp, seed)
        os.replace(tmp, path)
    return path


FLUX_SMALL = {"patch_size": 1, "in_channels": 64, "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 128,
              "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768,
              "guidance_embeds": True, "axes_dims_rope": (16, 56, 56)}


def build_flux(path: str, seed: int = SEED) -> str:
    """A FLUX.1-dev-shaped transformer with one double and one single block (FLUX.1's real widths, which ComfyUI's
    detection assumes: 24 heads of 128), seeded random weights, in BFL's layout as float16 (~1 GB): what ComfyUI's
    Load Diffusion Model reads as Flux, with fused qkv and linear1 layers."""
    from diffusers import FluxTransformer2DModel

    from original_layout import flux_to_original

    torch.manual_seed(seed)
    model = FluxTransformer2DModel(**FLUX_SMALL)
    tensors = _half(flux_to_original(model.state_dict()))
    del model
    gc.collect()
    save_file(tensors, path)
    return path
