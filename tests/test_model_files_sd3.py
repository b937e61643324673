"""SD3 split files beyond scaled fp8 (tests/test_model_files.py has that one): the MMDiT alone in diffusion_models/ as
bf16, as plain fp8 (the weights cast, no scales) and as ComfyUI-GGUF Q8_0 / Q4_0 files, with CLIP-L and OpenCLIP-G
(and T5, when the model has one; the tiny SD3 has none) in text_encoders/ and the VAE in vae/, loaded offline by
Load Diffusion Model.

The GGUF fixtures are ComfyUI-GGUF's convert.py (arch ``sd3``) + lcpp.patch's SD3 rules + gguf-py's quantizer
(tools/fixtures/generators/model_files/make_flux2_sd3_fixtures.py), compared with gguf-py's dequantization.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest
import torch
from model_file_fixtures import bits_equal, dequantized_copy, expected, fixture, quantized_layers
from safetensors.torch import load_file
from test_model_files import _fp8_layers, _placed, _scaled_fp8

from family_fixtures import PARAMS, fresh
from family_fixtures import render as render_with
from loradeck.core import Deck, FuseError
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import load_single_file

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)


def _render(pipe):
    return render_with("sd3", pipe, FAST)


def _parts(pipe, models, dtype=None) -> None:
    """CLIP-L, OpenCLIP-G, T5 (ComfyUI's text_encoders layouts) and the VAE (LDM keys) of ``pipe``."""
    from original_layout import clip_to_ldm, t5_to_ldm, vae_to_ldm
    from single_file_fixtures import save

    def cast(tensors):
        return {k: v.to(dtype) for k, v in tensors.items()} if dtype else tensors

    save(cast(clip_to_ldm(pipe.text_encoder.state_dict(), "")), str(models / "text_encoders" / "clip_l.safetensors"))
    save(cast(clip_to_ldm(pipe.text_encoder_2.state_dict(), "")), str(models / "text_encoders" / "clip_g.safetensors"))
    if pipe.text_encoder_3 is not None:  # the tiny SD3 has none (SD3 runs without T5, as "incl_clips" files)
        save(cast(t5_to_ldm(pipe.text_encoder_3.state_dict(), "")), str(models / "text_encoders" / "t5.safetensors"))
    save(cast(vae_to_ldm(pipe.vae.state_dict(), prefix="")), str(models / "vae" / "sd3_vae.safetensors"))


def test_sd3_bf16_split_files_give_the_diffusers_folders_images(tmp_path, use_models):
    from loradeck.nodes import NODE_CLASS_MAPPINGS
    from original_layout import sd3_to_original
    from single_file_fixtures import save

    pipe, models = fresh("sd3"), tmp_path / "models"
    # SD3 pools CLIP-L unprojected (ComfyUI's sd3_clip: return_projected_pooled=False; diffusers' single-file
    # loader sets its text_projection to the identity): the folder's projection is the identity, as SD3's is
    pipe.text_encoder.text_projection.weight.data = torch.eye(pipe.text_encoder.text_projection.weight.shape[0])
    for component in (pipe.transformer, pipe.text_encoder, pipe.text_encoder_2, pipe.vae):
        component.to(torch.bfloat16)  # the weights as ComfyUI's bf16 files hold them
    folder = str(tmp_path / "diffusers" / "sd3")
    pipe.save_pretrained(folder)
    _parts(pipe, models)
    save(sd3_to_original(pipe.transformer.state_dict(), prefix=""),
         str(models / "diffusion_models" / "sd3-tiny_bf16.safetensors"))
    use_models(str(models))
    node = NODE_CLASS_MAPPINGS["LoadDiffusionModel|LoRADeck"]()
    assert "sd3-tiny_bf16.safetensors" in node.INPUT_TYPES()["required"]["unet_name"][0]
    loaded = node.load("sd3-tiny_bf16.safetensors", "bfloat16")[0].owner.pipe
    assert not quantized_layers(loaded.transformer)
    state, want = loaded.transformer.state_dict(), pipe.transformer.state_dict()
    assert state.keys() == want.keys() and all(torch.equal(v, want[k]) for k, v in state.items())
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe
    assert (_render(loaded) - _render(reference)).abs().max() <= 2 / 255


@pytest.mark.parametrize("fmt", ["plain", "comfy_quant"])
def test_sd3_plain_and_comfy_quant_fp8_split_files_keep_fp8_weights(fmt, tmp_path):
    """``sd3.5_*_fp8_e4m3fn``-style files (plain: the joint blocks' Linear weights cast to float8_e4m3fn with no scale
    at all, nor a ``scaled_fp8`` marker) and ComfyUI 0.8.0's per-layer ``comfy_quant`` layout: each layer stays fp8 on
    the Linear(s) SD3's table names (qkv split in q, k, v) with exactly its dequantized weights, and a LoRA on top
    equals it on the dequantized weights."""
    from lora_fixtures import save_family_lora
    from original_layout import sd3_to_original
    from single_file_fixtures import save

    source, models = fresh("sd3"), tmp_path / "models"
    denoiser = _scaled_fp8(sd3_to_original(source.transformer.state_dict(), prefix=""), fmt=fmt)
    assert "scaled_fp8" not in denoiser
    assert any(k.endswith(".comfy_quant") for k in denoiser) == (fmt == "comfy_quant")
    _parts(source, models)
    pipe = load_single_file(save(denoiser, str(models / "diffusion_models" / f"sd3-tiny_fp8_e4m3fn_{fmt}.safetensors")),
                            torch.float32, CPU)
    layers = _fp8_layers(denoiser)
    if fmt == "plain":  # no scale: the weights are the fp8 values themselves
        assert all(torch.equal(dense, denoiser[f"{layer}.weight"].float()) for layer, dense in layers.items())
    kept = _placed("sd3", pipe.transformer, layers)
    assert set(kept.values()) == {"fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"} and len(kept) > 20
    lora = save_family_lora("sd3", str(tmp_path / "sd3-lora.safetensors"), seed=2)
    quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
    assert torch.equal(_render(quant_deck.pipe), _render(dense_deck.pipe))


@pytest.mark.parametrize("name", ["sd3_tiny-Q8_0.gguf", "sd3_tiny-Q4_0.gguf"])
def test_sd3_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    from lora_fixtures import save_family_lora
    from original_layout import sd3_to_original

    kind = name.split("-")[1].split(".")[0]
    source, models = fresh("sd3"), tmp_path / "models"
    if kind == "Q8_0":  # the files' bf16 source is the built-in tiny SD3 (seed 0) in SAI's names
        want = {k: v.to(torch.bfloat16) for k, v in sd3_to_original(source.transformer.state_dict(), "").items()}
        stored = load_file(fixture("sd3_tiny_bf16.safetensors"))
        assert stored.keys() == want.keys() and all(bits_equal(v, want[k]) for k, v in stored.items())
    _parts(source, models)
    os.makedirs(models / "diffusion_models")
    pipe = load_single_file(str(shutil.copyfile(fixture(name), models / "diffusion_models" / name)), torch.float32,
                            CPU)
    reference = {k.removesuffix(".weight"): v for k, v in expected(name).items()}
    assert len(reference) == 17  # the joint blocks' 2-D weights; embedders, final layer, pos_embed stay BF16/F32
    kept = _placed("sd3", pipe.transformer, reference)
    assert set(kept.values()) == {f"GGUF {kind}"}
    lora = save_family_lora("sd3", str(tmp_path / "sd3-lora.safetensors"), seed=2)
    quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
    assert torch.equal(_render(quant_deck.pipe), _render(dense_deck.pipe))
    with pytest.raises(FuseError, match=r"keeps its weight quantized \(GGUF .*nothing was fused"):
        quant_deck.fuse()
