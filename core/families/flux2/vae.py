"""The FLUX.2 VAE from BFL's file (``flux2-vae.safetensors``, ComfyUI's ``models/vae``): diffusers has no single-file
loader for ``AutoencoderKLFlux2``, so its weights are converted here by diffusers' own LDM VAE converter.

BFL's layout is the LDM VAE's (``encoder.down.N.block.M``, ``decoder.up.N``, ``mid.attn_1``) with the quant convs
inside the encoder / decoder (``encoder.quant_conv``, ``decoder.post_quant_conv``) and the latent BatchNorm's
running statistics (``bn.running_mean`` / ``bn.running_var``). ComfyUI moves the quant convs to the top level before
loading (``comfy/sd.py``: ``state_dict_prefix_replace``), diffusers' ``scripts/convert_flux2_to_diffusers.py`` maps
them the same way; after that ``convert_ldm_vae_checkpoint`` converts the rest, and the BatchNorm keeps its names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import PipelineLoadError

if TYPE_CHECKING:  # torch is imported where a model is built: commands that read the rows must not import it
    import torch

_MOVED = (("encoder.quant_conv.", "quant_conv."), ("decoder.post_quant_conv.", "post_quant_conv."))
_BATCH_NORM = ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked")


def to_diffusers(tensors: dict, config: dict) -> dict:
    """BFL / ComfyUI FLUX.2 VAE keys (any prefix before ``encoder.`` / ``decoder.`` / ``bn.``) -> diffusers keys."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    anchor = next((k for k in tensors if k.endswith("decoder.conv_in.weight")), None)
    if anchor is None:
        raise PipelineLoadError("the vae holds no decoder.conv_in.weight; it is not a FLUX.2 VAE")
    prefix = anchor[: -len("decoder.conv_in.weight")]
    state = {}
    for key, value in tensors.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        for old, new in _MOVED:
            if key.startswith(old):
                key = new + key[len(old):]
        state[key] = value
    converted = convert_ldm_vae_checkpoint({k: v for k, v in state.items() if not k.startswith("bn.")}, config)
    converted.update({k: state[k] for k in _BATCH_NORM if k in state})
    return converted


def vae_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    """An ``AutoencoderKLFlux2`` from the FLUX.2 VAE file's tensors (a builder for ``Arch.builders``)."""
    import torch

    config = cls.load_config(config_dir, subfolder=component)
    state = to_diffusers(tensors, config)
    with torch.device("meta"):
        model = cls.from_config(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if "bn.running_mean" in missing or "bn.running_var" in missing:
        raise PipelineLoadError("the VAE file has no bn.running_mean / bn.running_var: it is not the FLUX.2 VAE "
                                "(put flux2-vae.safetensors in models/vae)")
    if "bn.num_batches_tracked" in missing:  # a counter BFL's files may leave out; eval mode never reads it
        model.bn.num_batches_tracked = torch.tensor(0, dtype=torch.long)
    if unexpected:
        raise PipelineLoadError(f"the VAE file has {len(unexpected)} weights a FLUX.2 VAE of this architecture does "
                                f"not, e.g. {', '.join(unexpected[:3])}")
    return model.to(dtype).eval()
