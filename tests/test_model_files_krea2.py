"""Krea 2's split files: the denoiser alone (krea-ai/krea-2's ``SingleStreamDiT`` names; bf16, ComfyUI's fp8 layouts,
GGUF) in diffusion_models/, the Qwen3-VL-4B text encoder in text_encoders/, the Qwen-Image VAE (Wan 2.1 layout) in
vae/.

The fixtures (tools/fixtures/generators/model_files/make_krea2_fixtures.py) are LoRA Deck's tiny Krea 2 as the
original model class holds it (ai-toolkit's copy of krea-ai/krea-2's SingleStreamDiT, strict load), as transformers
saves Qwen3-VL, as ComfyUI's WanVAE holds the VAE, and ComfyUI-GGUF's convert.py + gguf-py's quantizer; each must
load back to the tiny pipeline's weights (GGUF: gguf-py's dequantization) and give the diffusers folder's images.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from model_file_fixtures import bits_equal, fixture, load_error, lora_exact, node_loads, place_models, quantized_layers
from safetensors.torch import load_file
from test_model_files import _fp8_layers, _scaled_fp8

from family_fixtures import PARAMS, fresh
from family_fixtures import render as render_with
from loradeck.core import Deck
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import load_single_file
from original_layout import krea2_to_original, qwen3_vl_to_hf, wan_vae_to_original

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)
KEY = "krea2"
DENOISER, TE, VAE = "krea2_tiny_bf16.safetensors", "krea2_tiny_te_bf16.safetensors", "krea2_tiny_vae_bf16.safetensors"


def render(pipe) -> torch.Tensor:
    return render_with(KEY, pipe, FAST)


def _models(tmp_path, denoiser: str | dict, te: str | dict = TE, vae: str | dict | None = VAE) -> str:
    return place_models(tmp_path, (("text_encoders", te, "qwen_3_vl_4b.safetensors"),
                                   ("vae", vae, "qwen_image_vae.safetensors"),
                                   ("diffusion_models", denoiser, "krea2_tiny.safetensors")))


def _placed(transformer, layers: dict[str, torch.Tensor]) -> dict[str, str]:
    """Every quantized Linear holds exactly one original layer's weight, placed by Krea 2's name table; every one of
    ``layers`` is placed. Returns the kept layers (diffusers name -> what they are)."""
    from loradeck.core.families.krea2.names import krea2_names

    kept, table = quantized_layers(transformer), krea2_names(transformer)
    for layer, dense in layers.items():
        name = table[layer]
        assert name in kept and torch.equal(transformer.get_submodule(name).weight, dense), layer
    assert len(kept) == len(layers) >= 40
    return kept


def test_the_fixtures_hold_the_tiny_krea2_in_its_users_layouts():
    pipe = fresh(KEY)
    for name, want in ((DENOISER, krea2_to_original(pipe.transformer.state_dict())),
                       (TE, qwen3_vl_to_hf(pipe.text_encoder.state_dict())),
                       (VAE, wan_vae_to_original(pipe.vae.state_dict(), pipe.vae.config.num_res_blocks))):
        stored = load_file(fixture(name))
        assert stored.keys() == want.keys(), name
        assert all(bits_equal(v, want[k].to(torch.bfloat16)) for k, v in stored.items()), name


def test_bf16_split_files_give_the_diffusers_folders_images(tmp_path, use_models):
    """Load Diffusion Model loads the bf16 denoiser with the Qwen3-VL encoder and the Wan-layout VAE found beside it
    by keys and shapes: the images of the diffusers folder of the same weights."""

    pipe = fresh(KEY)
    for component in (pipe.transformer, pipe.text_encoder, pipe.vae):
        component.to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / KEY)
    pipe.save_pretrained(folder)
    _models(tmp_path, DENOISER)
    loaded = node_loads(use_models, str(tmp_path / "models"), DENOISER)
    assert type(loaded).__name__ == "Krea2Pipeline" and tuple(loaded.text_encoder_select_layers) == (1, 2, 3)
    for name in ("transformer", "text_encoder", "vae"):
        want = getattr(pipe, name).state_dict()
        assert all(torch.equal(v, want[k]) for k, v in getattr(loaded, name).state_dict().items()), name
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe
    assert (render(loaded) - render(reference)).abs().max() <= 2 / 255


@pytest.mark.parametrize("fmt,prefix", [("scaled", ""), ("comfy_quant", ""), ("plain", ""),
                                        ("comfy_quant", "model.diffusion_model.")])
def test_fp8_split_files_keep_fp8_weights_through_its_name_table(fmt, prefix, tmp_path):
    """A Krea 2 denoiser in ComfyUI's fp8 layouts (its blocks and text-fusion blocks in fp8) with a Qwen3-VL encoder
    in the same layout: every fp8 layer stays fp8 on the diffusers Linear Krea 2's table names with exactly the
    dequantized weight, the encoder's weights equal the dequantization, and (scaled) a LoRA on top equals it on the
    dequantized weights. Bare or under ``model.diffusion_model.``."""
    from lora_fixtures import save_family_lora

    source = fresh(KEY)
    denoiser = _scaled_fp8(krea2_to_original(source.transformer.state_dict(), prefix),
                           (prefix + "blocks.", prefix + "txtfusion."), fmt)
    encoder = _scaled_fp8(qwen3_vl_to_hf(source.text_encoder.state_dict()), ("model.language_model.layers.",), fmt)
    pipe = load_single_file(_models(tmp_path, denoiser, te=encoder), torch.float32, CPU)
    kept = _placed(pipe.transformer, {k.removeprefix(prefix): v for k, v in _fp8_layers(denoiser).items()})
    assert set(kept.values()) == {"fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"}
    te = dict(pipe.text_encoder.named_modules())
    encoder_layers = _fp8_layers(encoder)
    assert len(encoder_layers) >= 28 and not quantized_layers(pipe.text_encoder)
    for layer, dense in encoder_layers.items():
        assert torch.equal(te[layer.removeprefix("model.")].weight, dense), layer
    if fmt == "scaled":
        lora = save_family_lora(KEY, str(tmp_path / "krea2-lora.safetensors"), seed=2)
        lora_exact(pipe, lora, render)


@pytest.mark.parametrize("name", ["krea2_tiny-Q8_0.gguf", "krea2_tiny-Q4_0.gguf"])
def test_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    from lora_fixtures import save_family_lora

    kind = name.split("-")[1].split(".")[0]
    pipe = load_single_file(_models(tmp_path, name), torch.float32, CPU)
    reference = load_file(fixture(name.replace(".gguf", ".expected.safetensors")))
    kept = _placed(pipe.transformer, {k.removesuffix(".weight"): v for k, v in reference.items()})
    assert set(kept.values()) == {f"GGUF {kind}"}
    lora = save_family_lora(KEY, str(tmp_path / "krea2-lora.safetensors"), seed=2)
    lora_exact(pipe, lora, render, r"keeps its weight quantized \(GGUF .*nothing was fused")


def test_a_krea2_of_other_depth_and_width_loads_from_files_alone(tmp_path):
    """3 blocks of 2 heads x 16 with 2 KV heads, SwiGLU 128, one layerwise and three refiner text blocks."""
    from diffusers import Krea2Transformer2DModel

    from loradeck.core.families.krea2 import tiny

    variant = fresh(KEY)
    torch.manual_seed(3)
    config = dict(tiny.TRANSFORMER, num_layers=3, num_attention_heads=2, num_key_value_heads=2,
                  intermediate_size=128, num_layerwise_text_blocks=1, num_refiner_text_blocks=3)
    variant.transformer = Krea2Transformer2DModel(**config).eval()
    with torch.no_grad():
        for param in variant.transformer.parameters():
            if not param.any():
                param.copy_(torch.randn(param.shape) * 0.1)
    path = _models(tmp_path, krea2_to_original(variant.transformer.state_dict()))
    pipe = load_single_file(path, torch.float32, CPU)
    got = pipe.transformer.config
    assert (got.num_layers, got.num_attention_heads, got.num_key_value_heads, got.intermediate_size,
            got.num_layerwise_text_blocks, got.num_refiner_text_blocks) == (3, 2, 2, 128, 1, 3)
    want = variant.transformer.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in pipe.transformer.state_dict().items())
    assert (render(pipe) - render(variant)).abs().max() <= 2 / 255


def test_a_real_size_krea2_config_is_derived_from_its_shapes_on_the_meta_device():
    from diffusers import Krea2Transformer2DModel

    from loradeck.core.families import SINGLE_FILE_ARCHS
    from loradeck.core.models import configs
    from loradeck.core.models.arch import Header
    from loradeck.core.models.build import meta_component
    from loradeck.core.models.single_file import identify

    for layers, want_key in ((28, "krea2"), (20, "krea2")):
        with torch.device("meta"):
            model = Krea2Transformer2DModel(num_layers=layers)
        shapes = {k: tuple(v.shape) for k, v in krea2_to_original(model.state_dict()).items()}
        header = Header("/models/diffusion_models/krea2_raw.safetensors", shapes, {}, {}, None)
        arch = identify(header)
        assert arch.key == want_key and arch in SINGLE_FILE_ARCHS
        resolved = configs.resolve(arch, header)
        try:
            config = Krea2Transformer2DModel.load_config(resolved.arch.config_dir, subfolder="transformer")
            assert {k: config[k] for k in ("num_layers", "num_attention_heads", "num_key_value_heads",
                                           "intermediate_size", "text_hidden_dim", "num_text_layers")} == \
                {"num_layers": layers, "num_attention_heads": 48, "num_key_value_heads": 12,
                 "intermediate_size": 16384, "text_hidden_dim": 2560, "num_text_layers": 12}
            assert resolved.source("transformer", "num_layers") == f"the denoiser's {layers} blocks"
            built = meta_component(resolved.arch.config_dir, "transformer")
            assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == \
                {k: tuple(v.shape) for k, v in model.state_dict().items()}
            text = meta_component(resolved.arch.config_dir, "text_encoder")
            assert text.language_model.embed_tokens.weight.shape == (151936, 2560)
            assert len(text.language_model.layers) == 36
        finally:
            resolved.cleanup()


def test_missing_parts_are_named_in_one_sentence_each(tmp_path):
    path = _models(tmp_path, DENOISER, te="", vae=None)
    message = load_error(path)
    assert "'krea2_tiny_bf16.safetensors' is a tiny Krea 2 (built-in) checkpoint" in message
    assert "Qwen3-VL-4B text encoder (text_encoder: width 32, 4 layers;" in message
    assert "a VAE (16 latent channels; z_dim from the denoiser's first.weight [64, 64]: 2 x 2 patches)" in message
