"""FLUX.2 [klein] split files as ComfyUI users keep them: the denoiser alone in diffusion_models/ (BFL names; bf16,
ComfyUI's fp8 layouts, ComfyUI-GGUF), the Qwen3 text encoder in text_encoders/ (ComfyUI's ``model.`` names), the
FLUX.2 VAE in vae/ (BFL's names, ``flux2-vae.safetensors``), loaded offline by Load Diffusion Model.

The original-layout files are written by tests/original_layout.py (the inverse of diffusers' own
``convert_flux2_transformer_checkpoint_to_diffusers`` / ``convert_ldm_vae_checkpoint``: the bf16 test proves the
round trip); that ComfyUI's own FLUX.2 model and VAE take the same files is checked by
tools/fixtures/generators/model_files/check_flux2_comfy.py (tests/fixtures/model_files/README.md). The GGUF fixtures
are ComfyUI-GGUF's convert.py + lcpp.patch's rules + gguf-py's quantizer (make_flux2_sd3_fixtures.py), compared with
gguf-py's dequantization.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest
import torch
from model_file_fixtures import bits_equal, dequantized_copy, expected, fixture
from safetensors.torch import load_file
from test_model_files import _fp8_layers, _placed, _scaled_fp8

from family_fixtures import PARAMS, fresh
from family_fixtures import render as render_with
from loradeck.core import Deck, FuseError, PipelineLoadError
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import load_single_file

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)
BLOCKS = ("double_blocks.", "single_blocks.", "double_stream_modulation_", "single_stream_modulation.")


def _load(path: str, dtype=torch.float32, **kwargs):
    return load_single_file(path, dtype, CPU, **kwargs)


def _render(pipe):
    return render_with("flux2", pipe, FAST)


def _encoder(pipe) -> dict:
    """The Qwen3 encoder as ComfyUI's ``qwen_3_4b.safetensors`` holds it: the Qwen3Model's weights under ``model.``
    (no LM head: the pipeline reads hidden states only)."""
    from original_layout import qwen3_to_comfy

    return qwen3_to_comfy(pipe.text_encoder.model.state_dict())


def _parts(pipe, models, encoder: dict | None = None) -> None:
    """Text encoder and VAE of ``pipe`` in ComfyUI's folders."""
    from original_layout import flux2_vae_to_bfl
    from single_file_fixtures import save

    save(encoder if encoder is not None else _encoder(pipe), str(models / "text_encoders" / "qwen_3_4b.safetensors"))
    save(flux2_vae_to_bfl(pipe.vae.state_dict()), str(models / "vae" / "flux2-vae.safetensors"))


# --- images: bf16 split files give the diffusers folder's images ------------------------------------------------
def test_flux2_klein_bf16_split_files_give_the_diffusers_folders_images(tmp_path, use_models):
    from loradeck.nodes import NODE_CLASS_MAPPINGS
    from original_layout import flux2_to_original
    from single_file_fixtures import save

    pipe, models = fresh("flux2"), tmp_path / "models"
    for component in (pipe.transformer, pipe.text_encoder, pipe.vae):
        component.to(torch.bfloat16)  # the weights as ComfyUI's bf16 files hold them
    folder = str(tmp_path / "diffusers" / "flux2")
    pipe.save_pretrained(folder)
    _parts(pipe, models)
    save(flux2_to_original(pipe.transformer.state_dict()), str(models / "diffusion_models" / "klein-tiny.safetensors"))
    use_models(str(models))
    node = NODE_CLASS_MAPPINGS["LoadDiffusionModel|LoRADeck"]()
    assert "klein-tiny.safetensors" in node.INPUT_TYPES()["required"]["unet_name"][0]
    loaded = node.load("klein-tiny.safetensors", "bfloat16")[0].owner.pipe
    assert type(loaded).__name__ == "Flux2KleinPipeline" and type(loaded.vae).__name__ == "AutoencoderKLFlux2"
    want = {**{f"transformer.{k}": v for k, v in pipe.transformer.state_dict().items()},
            **{f"vae.{k}": v for k, v in pipe.vae.state_dict().items()}}
    got = {**{f"transformer.{k}": v for k, v in loaded.transformer.state_dict().items()},
           **{f"vae.{k}": v for k, v in loaded.vae.state_dict().items()}}
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k].to(got[k].dtype)) for k in want)
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe
    assert (_render(loaded) - _render(reference)).abs().max() <= 2 / 255


# --- fp8: each layout kept in 8 bits on the Linear(s) the FLUX.2 table names ------------------------------------
@pytest.mark.parametrize("fmt", ["scaled", "comfy_quant", "plain"])
def test_flux2_klein_fp8_split_files_keep_fp8_weights(fmt, tmp_path):
    """A klein denoiser in ComfyUI's fp8 layouts (legacy scaled_fp8, per-layer comfy_quant, plain), blocks and the
    shared modulation layers in fp8, with a Qwen3 encoder in the same layout: every fp8 denoiser layer stays fp8 on
    the diffusers Linear(s) the FLUX.2 table names (double blocks' qkv split in thirds, single blocks' linear1
    fused) with exactly the dequantized rows; the encoder equals its dequantization; a LoRA on top (scaled) equals
    it on the dequantized weights."""
    from lora_fixtures import save_family_lora
    from original_layout import flux2_to_original
    from single_file_fixtures import save

    source, models = fresh("flux2"), tmp_path / "models"
    denoiser = _scaled_fp8(flux2_to_original(source.transformer.state_dict()), BLOCKS, fmt)
    encoder = _scaled_fp8(_encoder(source), ("model.layers.",), fmt)
    _parts(source, models, encoder)
    pipe = _load(save(denoiser, str(models / "diffusion_models" / f"klein-tiny_fp8_e4m3fn_{fmt}.safetensors")))
    kind = "fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"
    kept = _placed("flux2", pipe.transformer, _fp8_layers(denoiser))
    # per double block 2 fused qkv (3 Linears each) + 2 proj + 4 MLP; per single block 2; 3 shared modulations
    assert set(kept.values()) == {kind} and len(kept) == 2 * 12 + 2 * 2 + 3
    te = dict(pipe.text_encoder.named_modules())
    layers = _fp8_layers(encoder)
    assert len(layers) == 28 * 7 and all(torch.equal(te[layer].weight, dense) for layer, dense in layers.items())
    if fmt == "scaled":
        lora = save_family_lora("flux2", str(tmp_path / "flux2-lora.safetensors"), seed=2)
        quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
        assert torch.equal(_render(quant_deck.pipe), _render(dense_deck.pipe))


# --- GGUF: ComfyUI-GGUF's files equal gguf-py's dequantization, LoRAs unfused on top ---------------------------
@pytest.mark.parametrize("name", ["flux2_tiny-Q8_0.gguf", "flux2_tiny-Q4_0.gguf"])
def test_flux2_klein_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    from lora_fixtures import save_family_lora
    from original_layout import flux2_to_original

    kind = name.split("-")[1].split(".")[0]
    source, models = fresh("flux2"), tmp_path / "models"
    if kind == "Q8_0":  # the files' bf16 source is the built-in tiny klein (seed 0) in BFL's names
        want = {k: v.to(torch.bfloat16) for k, v in flux2_to_original(source.transformer.state_dict()).items()}
        stored = load_file(fixture("flux2_tiny_bf16.safetensors"))
        assert stored.keys() == want.keys() and all(bits_equal(v, want[k]) for k, v in stored.items())
    _parts(source, models)
    os.makedirs(models / "diffusion_models")
    pipe = _load(str(shutil.copyfile(fixture(name), models / "diffusion_models" / name)))
    reference = {k.removesuffix(".weight"): v for k, v in expected(name).items()}
    assert len(reference) == 23  # every 2-D block and modulation weight; img_in/txt_in/time_in/final_layer stay BF16
    kept = _placed("flux2", pipe.transformer, reference)
    assert set(kept.values()) == {f"GGUF {kind}"}
    lora = save_family_lora("flux2", str(tmp_path / "flux2-lora.safetensors"), seed=2)
    quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
    assert torch.equal(_render(quant_deck.pipe), _render(dense_deck.pipe))
    with pytest.raises(FuseError, match=r"keeps its weight quantized \(GGUF .*nothing was fused"):
        quant_deck.fuse()


# --- any size: the config read off the weights ---------------------------------------------------------------
def _header(config: dict, name: str):
    from diffusers import Flux2Transformer2DModel

    from loradeck.core.models.arch import Header
    from original_layout import flux2_to_original

    with torch.device("meta"):
        model = Flux2Transformer2DModel(**config)
    shapes = {k: tuple(v.shape) for k, v in flux2_to_original(model.state_dict()).items()}
    return Header(f"/models/diffusion_models/{name}", shapes, {}, {}, None), model


@pytest.mark.parametrize("key,config", [
    ("klein-4b", dict(num_layers=5, num_single_layers=20, num_attention_heads=24, joint_attention_dim=7680,
                      guidance_embeds=False)),
    ("klein-9b", dict(num_layers=8, num_single_layers=24, num_attention_heads=32, joint_attention_dim=12288,
                      guidance_embeds=False)),
    ("klein-4b", dict(num_layers=3, num_single_layers=10, num_attention_heads=24, joint_attention_dim=7680,
                      guidance_embeds=False)),  # a pruned klein: another depth, the 4B's width
])
def test_real_size_flux2_klein_configs_come_from_the_weights(key, config):
    """Real-size FLUX.2 [klein] files on the meta device (shapes only): the row, the transformer config (depth,
    width, heads, MLP, text width) read off the weights, the text encoder and VAE they require, and a model built
    from that config has the file's every key and shape after diffusers' own converter."""
    from diffusers import Flux2Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

    from loradeck.core.models import configs
    from loradeck.core.models.single_file import identify

    header, model = _header(config, "flux-2-klein.safetensors")
    arch = identify(header)
    assert arch.key == key
    resolved = configs.resolve(arch, header)
    try:
        folder = resolved.arch.config_dir
        got = Flux2Transformer2DModel.load_config(folder, subfolder="transformer")
        assert all(got[k] == v for k, v in config.items())
        assert got["attention_head_dim"] == 128 and got["mlp_ratio"] == 3.0 and got["in_channels"] == 128
        assert resolved.source("transformer", "num_layers") == f"the denoiser's {config['num_layers']} double_blocks"
        assert resolved.source("text_encoder", "hidden_size").startswith("the denoiser's txt_in.weight")
        with open(os.path.join(folder, "text_encoder", "config.json"), encoding="utf-8") as f:
            assert json.load(f)["hidden_size"] * 3 == config["joint_attention_dim"]
        with torch.device("meta"):
            built = Flux2Transformer2DModel.from_config(got)
        converted = convert_flux2_transformer_checkpoint_to_diffusers(
            {k: torch.empty(v, device="meta") for k, v in header.shapes.items()})
        want = {k: tuple(v.shape) for k, v in built.state_dict().items()}
        assert {k: tuple(v.shape) for k, v in converted.items()} == want
        assert want == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    finally:
        resolved.cleanup()


def test_a_missing_qwen3_encoder_is_named_with_the_width_the_denoiser_decided(tmp_path):
    from original_layout import flux2_to_original, flux2_vae_to_bfl
    from single_file_fixtures import save

    source, models = fresh("flux2"), tmp_path / "models"
    save(flux2_vae_to_bfl(source.vae.state_dict()), str(models / "vae" / "flux2-vae.safetensors"))
    os.makedirs(models / "text_encoders")
    path = save(flux2_to_original(source.transformer.state_dict()), str(models / "diffusion_models" / "k.safetensors"))
    with pytest.raises(PipelineLoadError) as err:
        _load(path)
    message = str(err.value)
    assert message.count("it needs") == 1
    assert "'k.safetensors' is a tiny FLUX.2 [klein] (built-in) checkpoint" in message
    assert "Qwen3-4B text encoder (text_encoder: width 16, 28 layers; hidden_size from the denoiser's txt_in.weight " \
           "[32, 48]: 3 stacked text-encoder hidden states" in message
    assert "put qwen_3_4b.safetensors in models/text_encoders" in message


def test_the_flux2_vae_is_required_by_its_batch_norm(tmp_path):
    """A VAE of the same widths without FLUX.2's latent BatchNorm (an LDM VAE) is not taken for the FLUX.2 VAE."""
    from original_layout import flux2_to_original
    from single_file_fixtures import save

    source, models = fresh("flux2"), tmp_path / "models"
    _parts(source, models)
    vae = load_file(str(models / "vae" / "flux2-vae.safetensors"))
    save({k: v for k, v in vae.items() if not k.startswith("bn.")}, str(models / "vae" / "flux2-vae.safetensors"))
    path = save(flux2_to_original(source.transformer.state_dict()), str(models / "diffusion_models" / "k.safetensors"))
    with pytest.raises(PipelineLoadError, match=r"no bn.running_mean / bn.running_var: it is not the FLUX.2 VAE"):
        _load(path)
