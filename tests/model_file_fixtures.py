"""ComfyUI-layout model folders for the model-file tests: a denoiser in diffusion_models/ (or unet/), text encoders
in text_encoders/ and clip/, a VAE in vae/. The quantized files are the committed fixtures made by ComfyUI's,
ComfyUI-GGUF's and ggml's own code (tests/fixtures/model_files/README.md); the rest is written here from the tiny
models by the inverse of diffusers' conversion (original_layout.py)."""

from __future__ import annotations

import json
import os
import shutil

import torch
from safetensors.torch import load_file

from family_fixtures import fresh
from loradeck.core.families.flux.names import flux_names
from loradeck.core.models.original_names import RowSplit
from loradeck.core.models.quantized.linear import QuantizedLinear
from original_layout import clip_to_ldm, flux_to_original, t5_to_ldm, vae_to_ldm
from single_file_fixtures import save

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "model_files")
with open(os.path.join(FIXTURES, "MANIFEST_fp8.json"), encoding="utf-8") as _f:
    MANIFEST = json.load(_f)
DTYPES = {"": torch.float32, "bfloat16/": torch.bfloat16, "float16/": torch.float16}
WIDE = {"attention_head_dim": 32, "axes_dims_rope": [8, 12, 12]}  # flux_tiny64: hidden 64 = 2 heads of 32


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name)


def expected(name: str) -> dict[str, torch.Tensor]:
    """The reference dequantization stored with a quantized fixture (ComfyUI's own load path, or gguf-py)."""
    stem = name.rsplit(".", 1)[0]
    own = f"{stem}.expected.safetensors"
    return load_file(fixture(MANIFEST["expected_aliases"].get(own, own)))


def wide_flux(seed: int = 0):
    """The tiny Flux with hidden 64 (2 heads of 32, RoPE axes 8/12/12) that flux_tiny64-*.gguf were made from."""
    from diffusers import FluxTransformer2DModel

    pipe = fresh("flux")
    torch.manual_seed(seed)
    pipe.transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=2, num_single_layers=2, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=32, **WIDE).eval()
    return pipe


def models_folder(root: str, denoiser: str, t5: str = "t5_tiny_bf16.safetensors", folder: str = "diffusion_models",
                  pipe=None) -> str:
    """``root/models`` with ``denoiser`` (a fixture name, or a path) in ``folder``, the tiny T5 (a fixture) in
    text_encoders/, CLIP-L in clip/ and the VAE in vae/ (bf16, as ComfyUI users have them). Returns the
    denoiser's path."""
    pipe = pipe or fresh("flux")
    models = os.path.join(root, "models")
    save({k: v.to(torch.bfloat16) for k, v in clip_to_ldm(pipe.text_encoder.state_dict(), "").items()},
         os.path.join(models, "clip", "clip_l.safetensors"))
    save({k: v.to(torch.bfloat16) for k, v in vae_to_ldm(pipe.vae.state_dict(), "").items()},
         os.path.join(models, "vae", "ae.safetensors"))
    os.makedirs(os.path.join(models, "text_encoders"), exist_ok=True)
    if t5:
        shutil.copyfile(t5 if os.path.isabs(t5) else fixture(t5), os.path.join(models, "text_encoders",
                                                                              os.path.basename(t5)))
    os.makedirs(os.path.join(models, folder), exist_ok=True)
    target = os.path.join(models, folder, os.path.basename(denoiser))
    shutil.copyfile(denoiser if os.path.isabs(denoiser) else fixture(denoiser), target)
    return target


def place_models(tmp_path, parts) -> str:
    """``tmp_path/models`` in ComfyUI's layout: each of ``parts``, ``(folder, what, name)``, makes ``folder`` and puts
    ``what`` there as ``name``: a dict of tensors is saved, a fixture name is copied (the last part, the denoiser,
    keeps its fixture's own name), a falsy ``what`` (None, "", {}) leaves the folder empty. Returns the last placed
    file's path (the denoiser's)."""
    models, path = tmp_path / "models", ""
    for index, (folder, what, name) in enumerate(parts):
        os.makedirs(models / folder, exist_ok=True)
        if isinstance(what, dict) and what:
            path = save(what, str(models / folder / name))
        elif isinstance(what, str) and what:
            last = index == len(parts) - 1
            path = shutil.copyfile(fixture(what), models / folder / (what if last else name))
    return str(path)


def split_files(root: str, pipe, dtype: torch.dtype, name: str = "flux-tiny.safetensors") -> str:
    """The whole tiny Flux ``pipe`` as ComfyUI's split files in ``dtype`` (BFL denoiser, ComfyUI T5, CLIP-L, VAE)."""
    models = os.path.join(root, "models")

    def cast(tensors):
        return {k: v.to(dtype) for k, v in tensors.items()}

    save(cast(t5_to_ldm(pipe.text_encoder_2.state_dict(), "")), os.path.join(models, "text_encoders", "t5.safetensors"))
    save(cast(clip_to_ldm(pipe.text_encoder.state_dict(), "")), os.path.join(models, "clip", "clip_l.safetensors"))
    save(cast(vae_to_ldm(pipe.vae.state_dict(), "")), os.path.join(models, "vae", "ae.safetensors"))
    return save(cast(flux_to_original(pipe.transformer.state_dict(), "")),
                os.path.join(models, "diffusion_models", name))


def original_weight(transformer, layer: str) -> torch.Tensor:
    """A BFL layer's dense weight assembled from the diffusers modules that hold its rows (flux_names)."""
    target = flux_names(transformer)[layer]
    if isinstance(target, str):
        return transformer.get_submodule(target).weight.detach()
    assert isinstance(target, RowSplit)
    first = transformer.get_submodule(target.parts[0][0]).weight
    out = torch.empty(target.rows, first.shape[1], dtype=first.dtype)
    for name, ranges in target.parts:
        weight, offset = transformer.get_submodule(name).weight.detach(), 0
        for a, b in ranges:
            out[a:b] = weight[offset: offset + b - a]
            offset += b - a
    return out


def lora_exact(pipe, lora: str, render, refusal: str | None = None) -> None:
    """A LoRA on the quantized ``pipe`` renders exactly as on its dequantized copy (unfused); with ``refusal`` (a
    regex), fusing it is refused with that reason."""
    import pytest

    from loradeck.core import Deck, FuseError

    quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
    assert torch.equal(render(quant_deck.pipe), render(dense_deck.pipe))
    if refusal is not None:
        with pytest.raises(FuseError, match=refusal):
            quant_deck.fuse()


def load_error(path: str) -> str:
    """The message of the PipelineLoadError that loading the single file at ``path`` (float32, CPU) must raise."""
    import pytest

    from loradeck.core import PipelineLoadError
    from loradeck.core.models.single_file import load_single_file

    with pytest.raises(PipelineLoadError) as err:
        load_single_file(path, torch.float32, torch.device("cpu"))
    return str(err.value)


def node_loads(use_models, models: str, name: str):
    """ComfyUI's models folder set to ``models`` (conftest's ``use_models``): Load Diffusion Model lists ``name`` and
    loads it in bf16. Returns the loaded pipeline."""
    from loradeck.nodes import NODE_CLASS_MAPPINGS

    use_models(models)
    node = NODE_CLASS_MAPPINGS["LoadDiffusionModel|LoRADeck"]()
    assert name in node.INPUT_TYPES()["required"]["unet_name"][0]
    return node.load(name, "bfloat16")[0].owner.pipe


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal to the bit (NaN payloads included), same dtype and shape."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    view = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return torch.equal(a.contiguous().view(view), b.contiguous().view(view))


def quantized_layers(model) -> dict[str, str]:
    return {n: m.quantized for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}


def dequantized_copy(pipe):
    """The same pipeline with every quantized Linear replaced by a dense nn.Linear holding its dequantized weight:
    what a LoRA on the quantized model must equal."""
    import copy

    dense = copy.deepcopy(pipe)
    for component in (getattr(dense, c, None) for c in ("transformer", "transformer_2", "text_encoder",
                                                         "text_encoder_2")):
        if component is None:
            continue
        for name, module in list(component.named_modules()):
            if isinstance(module, QuantizedLinear):
                linear = torch.nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                                         device="meta")
                linear.weight = torch.nn.Parameter(module.weight, requires_grad=False)
                linear.bias = module.bias
                parent, _, child = name.rpartition(".")
                setattr(component.get_submodule(parent) if parent else component, child, linear)
    return dense
