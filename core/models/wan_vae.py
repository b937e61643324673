"""VAE files in the Wan 2.1 layout (Wan-AI's ``Wan2.1_VAE.pth`` names), as ComfyUI users keep them in ``models/vae``:
``wan_2.1_vae.safetensors`` and Qwen-Image's ``qwen_image_vae.safetensors`` (Krea 2 ships the same VAE). ComfyUI's
own ``comfy/ldm/wan/vae.py`` (``WanVAE``) reads these names as they are. Wan 2.2's residual VAE
(``wan2.2_vae.safetensors``, ``is_residual``) is refused by name: diffusers has no converter for its layout.

Recognised by keys and shapes (``decoder.middle.0.residual.0.gamma``: diffusers' own detection key "wan_vae";
``decoder.conv1.weight`` [top channels, latent channels (, 3, 3, 3)]) and converted by diffusers' own
``convert_wan_vae_to_diffusers``. That converter numbers the decoder's ``upsamples`` as the real models have them
(2 res blocks per level: 3 residual blocks, then the resample, per level) and places only the real models'
residual shortcut; ``build`` first renumbers other depths (the tiny test models' 1) to that scheme and names every
shortcut for diffusers (``_renumbered``), so each block lands where the config puts it. ``AutoencoderKLQwenImage``
has the same modules under the same names as ``AutoencoderKLWan`` but no single-file entry in diffusers, so both are
built from their config with parameters on the meta device and given the converted tensors (no random
initialisation, no copy).
"""

from __future__ import annotations

import json
import os

MARKER = "decoder.middle.0.residual.0.gamma"
_CONV_IN = "decoder.conv1.weight"  # [base_dim * dim_mult[-1], z_dim, 3, 3, 3]


def is_wan_config(config: dict) -> bool:
    """Whether a diffusers VAE config is of a Wan-layout class (``base_dim`` / ``z_dim`` instead of
    ``block_out_channels`` / ``latent_channels``)."""
    return "z_dim" in config and "base_dim" in config


def wanted(config: dict) -> tuple[int, int]:
    """(decoder input channels, latent channels) a Wan-layout file must have for this diffusers config."""
    return config["base_dim"] * config.get("dim_mult", [1, 2, 4, 4])[-1], config["z_dim"]


def find(shapes: dict) -> list[tuple[str, tuple[int, int]]]:
    """Every Wan-layout VAE in a file's keys: (key prefix, (decoder input channels, latent channels))."""
    found = []
    for key in shapes:
        if not key.endswith(MARKER):
            continue
        prefix = key[: -len(MARKER)]
        conv = shapes.get(prefix + _CONV_IN)
        if conv is not None and len(conv) == 5:
            found.append((prefix, (conv[0], conv[1])))
    return found


_UP = "decoder.upsamples."


def _renumbered(tensors: dict, res_blocks: int, levels: int) -> dict:
    """The decoder's ``upsamples.<i>`` in the numbering diffusers' converter maps: from ``res_blocks`` per level to
    the real models' 2 (level l, block b -> 4 l + b; a level's resample -> 4 l + 3). Residual shortcuts are named
    for diffusers here (``up_blocks.<l>.resnets.<b>.conv_shortcut``): the converter places only the one the real
    models have (level 1's first block), and other channel multipliers put them at other levels."""
    if res_blocks > 2:
        from ..errors import PipelineLoadError

        raise PipelineLoadError(f"a Wan-layout VAE with {res_blocks} res blocks per level: diffusers' converter "
                                "maps at most 2")
    step, out = res_blocks + 2, {}  # per level: res_blocks + 1 residual blocks and a resample
    for key, value in tensors.items():
        if key.startswith(_UP) and key[len(_UP):].split(".", 1)[0].isdigit():
            index, rest = key[len(_UP):].split(".", 1)
            level, block = divmod(int(index), step)
            if rest.startswith("shortcut."):
                key = f"decoder.up_blocks.{level}.resnets.{block}.conv_{rest}"
            else:
                block = 3 if block == res_blocks + 1 and level < levels - 1 else block
                key = f"{_UP}{4 * level + block}.{rest}"
        out[key] = value
    return out


def build(cls, component: str, tensors: dict, config_dir: str, dtype):
    """A Wan-layout VAE class (``AutoencoderKLWan``, ``AutoencoderKLQwenImage``) from Wan-layout tensors (no prefix),
    configured from ``config_dir/component``: diffusers' converter renames, the model is made with its parameters
    on the meta device and takes the converted tensors (no random initialisation, no copy)."""
    import torch
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    from ..errors import PipelineLoadError
    from .quantized.loading import _parameters_on_meta

    with open(os.path.join(config_dir, component, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    if config.get("is_residual"):  # Wan 2.2's VAE (TI2V-5B): residual up/down blocks diffusers has no converter for
        raise PipelineLoadError(f"the {component} is Wan 2.2's VAE (is_residual), whose Wan-layout file LoRA Deck "
                                "does not convert yet; load the model's diffusers folder")
    tensors = _renumbered(tensors, config.get("num_res_blocks", 2), len(config.get("dim_mult", [1, 2, 4, 4])))
    converted = {k: v.to(dtype) for k, v in convert_wan_vae_to_diffusers(tensors).items()}
    with _parameters_on_meta():
        model = cls.from_config(config)
    missing, unexpected = model.load_state_dict(converted, strict=False, assign=True)
    if unexpected:
        raise PipelineLoadError(f"the {component} has {len(unexpected)} weights a {cls.__name__} of this "
                                f"configuration does not, e.g. {', '.join(sorted(unexpected)[:3])}")
    del missing  # left on the meta device: build.check_complete names them
    return torch.nn.Module.to(model, dtype)  # (buffers too; diffusers' own .to warns without cause)

