"""VAE files in the Wan layout (Wan-AI's ``WanVAE`` names), as ComfyUI users keep them in ``models/vae``: the
Wan 2.1 VAE's (``wan_2.1_vae.safetensors``; Qwen-Image's ``qwen_image_vae.safetensors`` and Krea 2's VAE have the
same one) and the Wan 2.2 VAE's (TI2V-5B, ``wan2.2_vae.safetensors``). ComfyUI's own ``comfy/ldm/wan/vae.py`` and
``vae2_2.py`` read these names as they are. Recognised by keys and shapes (``find``), renamed for diffusers'
``AutoencoderKLWan`` / ``AutoencoderKLQwenImage`` (the same module names) and built (``build``).

diffusers' own ``convert_wan_vae_to_diffusers`` does the renaming; it numbers the decoder's up-sampling stages for
the released shape only (3 residual blocks per stage, ``decoder.upsamples.0-14``) and places only the released
models' residual shortcut. Files of other shapes (the pack's tiny models, 1 or 2 residual blocks per stage; other
channel multipliers) take the same rule for any stage size: stage ``s`` holds original
``decoder.upsamples.[s*(r+1), s*(r+1)+r)`` as ``up_blocks.s.resnets.*`` and the next index as its up-sampler
(``upsamplers.0``), ``r`` the blocks per stage, and every shortcut is named where its block is; the tests check
both give the same names on the released shape.

The Wan 2.2 VAE (residual stages, nested ``encoder.downsamples.N.downsamples.M`` and
``decoder.upsamples.N.upsamples.M``) has no diffusers single-file converter: its stages are renamed here
(``N.downsamples.M`` -> ``down_blocks.N.resnets.M``, the stage's last entry, a re-sampler, -> ``downsampler`` /
``upsampler``), everything else (middle blocks, heads, the quant convs) by diffusers' converter as above. The tests
check it against ComfyUI's own Wan 2.2 VAE (``comfy/ldm/wan/vae2_2.py``) on the same weights.

``AutoencoderKLQwenImage`` has no single-file entry in diffusers, so both classes are built from their config with
parameters on the meta device and given the converted tensors (no random initialisation, no copy).
"""

from __future__ import annotations

import json
import os
import re

# original-layout keys: the decoder's input conv [widest, z_dim, 3, 3, 3] and its middle block
ORIGINAL = "decoder.conv1.weight"
MARKER = _ORIGINAL_MIDDLE = "decoder.middle.0.residual.0.gamma"  # diffusers' own detection key "wan_vae"
DIFFUSERS = "decoder.conv_in.weight"  # diffusers' layout: AutoencoderKLWan.save_pretrained
_DIFFUSERS_MIDDLE = "decoder.mid_block.resnets.0.norm1.gamma"
_WAN22 = "decoder.upsamples.0.upsamples.0.residual.0.gamma"  # the Wan 2.2 VAE's nested stages
_UPSAMPLE = re.compile(r"decoder\.upsamples\.(\d+)\.(.*)")
_STAGE22 = re.compile(r"(encoder|decoder)\.(down|up)samples\.(\d+)\.(?:down|up)samples\.(\d+)\.(.*)")
_RESNET = {"residual.0.gamma": "norm1.gamma", "residual.2.weight": "conv1.weight", "residual.2.bias": "conv1.bias",
           "residual.3.gamma": "norm2.gamma", "residual.6.weight": "conv2.weight", "residual.6.bias": "conv2.bias",
           "shortcut.weight": "conv_shortcut.weight", "shortcut.bias": "conv_shortcut.bias"}


def find(shapes: dict) -> tuple[str, str, tuple[int, int]] | None:
    """A Wan-layout VAE among ``shapes`` (key -> shape): (prefix, layout "original" | "diffusers" | "wan2.2",
    (widest channels, latent channels)), or None."""
    for key, shape in shapes.items():
        for marker, middle, layout in ((ORIGINAL, _ORIGINAL_MIDDLE, "original"),
                                       (DIFFUSERS, _DIFFUSERS_MIDDLE, "diffusers")):
            if not key.endswith(marker) or len(shape) != 5:
                continue
            prefix = key[: -len(marker)]
            if prefix + middle not in shapes:
                continue
            if layout == "original" and prefix + _WAN22 in shapes:
                layout = "wan2.2"
            return prefix, layout, (int(shape[0]), int(shape[1]))
    return None


def is_wan_config(config: dict) -> bool:
    """Whether a diffusers VAE config is of a Wan-layout class (``base_dim`` / ``z_dim`` instead of
    ``block_out_channels`` / ``latent_channels``)."""
    return "z_dim" in config and "base_dim" in config


def wanted(config: dict) -> tuple[int, int]:
    """(widest channels, latent channels) an ``AutoencoderKLWan`` / ``AutoencoderKLQwenImage`` config needs."""
    base = config.get("decoder_base_dim") or config["base_dim"]
    return int(base * config.get("dim_mult", [1, 2, 4, 4])[-1]), int(config["z_dim"])


def _stage_size(keys) -> int:
    """Entries per decoder stage in the original layout: its residual blocks and the up-sampler after them."""
    resample = sorted(int(m.group(1)) for m in map(_UPSAMPLE.match, keys)
                      if m and m.group(2).startswith(("resample.", "time_conv.")))
    return resample[0] + 1 if resample else 0


def to_diffusers(state: dict) -> dict:
    """An original-layout Wan 2.1 or 2.2 VAE state dict (no prefix) in diffusers' names: diffusers' converter, with
    the decoder's stages numbered for the file's own stage size, or the 2.2 stages renamed (see the module
    docstring)."""
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    if any(_STAGE22.match(k) for k in state):
        return _wan22_to_diffusers(state, convert_wan_vae_to_diffusers)
    size = _stage_size(state)
    decoder = {k: v for k, v in state.items() if _UPSAMPLE.match(k)}
    out = convert_wan_vae_to_diffusers({k: v for k, v in state.items() if k not in decoder})
    for key, value in decoder.items():
        out[decoder_name(key, size)] = value
    return out


def decoder_name(key: str, size: int) -> str:
    """diffusers' name of one original ``decoder.upsamples.N.*`` key, for stages of ``size`` entries."""
    index, rest = _UPSAMPLE.match(key).groups()
    stage, slot = divmod(int(index), size) if size else (0, int(index))
    if rest.startswith(("resample.", "time_conv.")):
        return f"decoder.up_blocks.{stage}.upsamplers.0.{rest}"
    if rest not in _RESNET:
        raise ValueError(f"{key}: not a key of the Wan 2.1 VAE's decoder")
    return f"decoder.up_blocks.{stage}.resnets.{slot}.{_RESNET[rest]}"


def _wan22_to_diffusers(state: dict, convert) -> dict:
    stages = {k: v for k, v in state.items() if _STAGE22.match(k)}
    out = convert({k: v for k, v in state.items() if k not in stages})
    for key, value in stages.items():
        part, direction, stage, entry, rest = _STAGE22.match(key).groups()
        block = "down_blocks" if direction == "down" else "up_blocks"
        if rest.startswith(("resample.", "time_conv.")):
            out[f"{part}.{block}.{stage}.{direction}sampler.{rest}"] = value
        elif rest in _RESNET:
            out[f"{part}.{block}.{stage}.resnets.{entry}.{_RESNET[rest]}"] = value
        else:
            raise ValueError(f"{key}: not a key of the Wan 2.2 VAE")
    return out


def build(cls, component: str, tensors: dict, config_dir: str, dtype):
    """A Wan-layout VAE class (``AutoencoderKLWan``: Wan 2.1 or 2.2; ``AutoencoderKLQwenImage``) from its tensors in
    the original or diffusers' layout (under any prefix), configured from ``config_dir/component``: renamed by
    ``to_diffusers``, made with its parameters on the meta device and given the tensors. Weights the file lacks stay
    on the meta device for ``build.check_complete`` to name."""
    import torch

    from ..errors import PipelineLoadError
    from .quantized.loading import _parameters_on_meta

    found = find({k: tuple(v.shape) for k, v in tensors.items()})
    if found is None:
        raise PipelineLoadError(f"the {component} is not a Wan-layout VAE (no {ORIGINAL} or {DIFFUSERS} beside its "
                                "middle block)")
    prefix, layout, _ = found
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if layout != "diffusers":
        state = to_diffusers(state)
    with open(os.path.join(config_dir, component, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    with _parameters_on_meta():
        model = cls.from_config(config)
    _, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False, assign=True)
    if unexpected:
        raise PipelineLoadError(f"the {component} has {len(unexpected)} weights a {cls.__name__} of this "
                                f"configuration does not, e.g. {', '.join(sorted(unexpected)[:3])}")
    return torch.nn.Module.to(model, dtype).eval()  # (buffers too; diffusers' own .to warns without cause)
