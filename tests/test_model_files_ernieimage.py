"""ERNIE-Image's split files: the denoiser alone (diffusers' own module names, as Comfy-Org/ERNIE-Image's
``ernie-image.safetensors``; bf16, ComfyUI's fp8 layouts, GGUF) in diffusion_models/, the Ministral 3 3B text encoder
in ComfyUI's layout (``model.*``) in text_encoders/, the FLUX.2 VAE (BFL's names) in vae/.

The fixtures (tools/fixtures/generators/model_files/make_ernieimage_fixtures.py) are LoRA Deck's tiny ERNIE-Image as
those files hold it (the text model as ComfyUI's llama modules hold it, strict load) and ComfyUI-GGUF's convert.py +
gguf-py's quantizer; each must load back to the tiny pipeline's weights (GGUF: gguf-py's dequantization) and give
the diffusers folder's images.
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
from loradeck.core import Deck, PipelineLoadError
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import load_single_file
from original_layout import flux2_vae_to_bfl

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)
KEY = "ernieimage"
DENOISER = "ernieimage_tiny_bf16.safetensors"
TE, VAE = "ernieimage_tiny_te_bf16.safetensors", "ernieimage_tiny_vae_bf16.safetensors"
TEXT = "language_model."  # Mistral3Model's text model: the split files' encoder is that model alone


def render(pipe) -> torch.Tensor:
    return render_with(KEY, pipe, FAST)


def _comfy_te(sd: dict) -> dict:
    """Mistral3Model weights -> ComfyUI's ``ministral-3-3b.safetensors`` names (the text model under ``model.``)."""
    return {"model." + k[len(TEXT):]: v for k, v in sd.items() if k.startswith(TEXT)}


def _text_model(sd: dict) -> dict:
    return {k[len(TEXT):]: v for k, v in sd.items() if k.startswith(TEXT)}


def _models(tmp_path, denoiser: str | dict, te: str | dict = TE, vae: str | dict | None = VAE) -> str:
    return place_models(tmp_path, (("text_encoders", te, "ministral-3-3b.safetensors"),
                                   ("vae", vae, "flux2-vae.safetensors"),
                                   ("diffusion_models", denoiser, "ernie-image-tiny.safetensors")))


def test_the_fixtures_hold_the_tiny_ernieimage_in_its_users_layouts():
    pipe = fresh(KEY)
    for name, want in ((DENOISER, pipe.transformer.state_dict()), (TE, _comfy_te(pipe.text_encoder.state_dict())),
                       (VAE, flux2_vae_to_bfl(pipe.vae.state_dict()))):
        stored = load_file(fixture(name))
        assert stored.keys() == want.keys(), name
        assert all(bits_equal(v, want[k].to(torch.bfloat16)) for k, v in stored.items()), name


def test_bf16_split_files_give_the_diffusers_folders_images(tmp_path, use_models):
    """Load Diffusion Model loads the bf16 denoiser with the Ministral 3 encoder and the FLUX.2 VAE found beside it
    by keys and shapes: the images of the diffusers folder of the same weights."""

    pipe = fresh(KEY)
    for component in (pipe.transformer, pipe.text_encoder, pipe.vae):
        component.to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / KEY)
    pipe.save_pretrained(folder)
    _models(tmp_path, DENOISER)
    loaded = node_loads(use_models, str(tmp_path / "models"), DENOISER)
    assert type(loaded).__name__ == "ErnieImagePipeline" and type(loaded.text_encoder).__name__ == "Ministral3Model"
    for name, want in (("transformer", pipe.transformer.state_dict()), ("vae", pipe.vae.state_dict()),
                       ("text_encoder", _text_model(pipe.text_encoder.state_dict()))):
        got = getattr(loaded, name).state_dict()
        assert got.keys() == want.keys() and all(torch.equal(v, want[k]) for k, v in got.items()), name
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe
    assert (render(loaded) - render(reference)).abs().max() <= 2 / 255


@pytest.mark.parametrize("fmt,prefix", [("scaled", ""), ("comfy_quant", ""), ("plain", ""),
                                        ("comfy_quant", "model.diffusion_model.")])
def test_fp8_split_files_keep_fp8_weights_on_their_own_linears(fmt, prefix, tmp_path):
    """An ERNIE-Image denoiser in ComfyUI's fp8 layouts (its blocks' Linears in fp8) with a Ministral 3 encoder in the
    same layout: every fp8 block layer stays fp8 on the Linear of its own name with exactly the dequantized weight,
    the encoder's weights equal the dequantization (dequantized at load), and (scaled) a LoRA on top equals it on
    the dequantized weights. Bare or under ``model.diffusion_model.``."""
    from lora_fixtures import save_family_lora

    source = fresh(KEY)
    denoiser = _scaled_fp8({prefix + k: v for k, v in source.transformer.state_dict().items()},
                           (prefix + "layers.",), fmt)
    encoder = _scaled_fp8(_comfy_te(source.text_encoder.state_dict()), ("model.layers.",), fmt)
    pipe = load_single_file(_models(tmp_path, denoiser, te=encoder), torch.float32, CPU)
    layers = {k.removeprefix(prefix): v for k, v in _fp8_layers(denoiser).items()}
    kept = quantized_layers(pipe.transformer)
    assert set(kept) == set(layers) and len(kept) == 14  # 7 Linear layers in each of the 2 blocks
    assert set(kept.values()) == {"fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"}
    assert all(torch.equal(pipe.transformer.get_submodule(k).weight, v) for k, v in layers.items())
    te = dict(pipe.text_encoder.named_modules())
    encoder_layers = _fp8_layers(encoder)
    assert len(encoder_layers) == 14 and not quantized_layers(pipe.text_encoder)
    for layer, dense in encoder_layers.items():
        assert torch.equal(te[layer.removeprefix("model.")].weight, dense), layer
    if fmt == "scaled":
        lora = save_family_lora(KEY, str(tmp_path / "ernie-lora.safetensors"), seed=2)
        lora_exact(pipe, lora, render, r"keeps its weight quantized \(fp8 .*nothing was fused")


@pytest.mark.parametrize("name", ["ernieimage_tiny_fp8_e4m3fn_mixed.safetensors",
                                  "ernieimage_tiny_fp8_e4m3fn_scaled.safetensors"])
def test_comfyuis_own_fp8_files_equal_comfyuis_dequantization(name, tmp_path):
    """The fp8 files ComfyUI 0.8.0's quantizer wrote (per-layer comfy_quant, and the same data in the legacy
    scaled_fp8 layout): every block Linear stays fp8 on the Linear of its name, its weight exactly ComfyUI's own
    float32 dequantization (make_ernieimage_fp8_fixtures.py)."""
    pipe = load_single_file(_models(tmp_path, name), torch.float32, CPU)
    reference = {k.removesuffix(".weight"): v for k, v in load_file(fixture(
        "ernieimage_tiny_fp8_e4m3fn.expected.safetensors")).items()}
    kept = quantized_layers(pipe.transformer)
    assert set(kept) == set(reference) and len(kept) == 14 and set(kept.values()) == {"fp8 e4m3fn scaled"}
    assert all(torch.equal(pipe.transformer.get_submodule(k).weight, v) for k, v in reference.items())


@pytest.mark.parametrize("name", ["ernieimage_tiny-Q8_0.gguf", "ernieimage_tiny-Q4_0.gguf"])
def test_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    """ComfyUI-GGUF files of the tiny ERNIE-Image alone in diffusion_models/: every quantized tensor stays quantized
    on the Linear of its name with exactly gguf-py's dequantization, a LoRA on top equals it on the dequantized
    weights (unfused), and fusing is refused with the reason."""
    from lora_fixtures import save_family_lora

    kind = name.split("-")[1].split(".")[0]
    pipe = load_single_file(_models(tmp_path, name), torch.float32, CPU)
    reference = {k.removesuffix(".weight"): v for k, v in load_file(fixture(name.replace(
        ".gguf", ".expected.safetensors"))).items()}
    kept = quantized_layers(pipe.transformer)
    assert set(kept) == set(reference) and len(kept) == 14 and set(kept.values()) == {f"GGUF {kind}"}
    assert all(torch.equal(pipe.transformer.get_submodule(k).weight, v) for k, v in reference.items())
    lora = save_family_lora(KEY, str(tmp_path / "ernie-lora.safetensors"), seed=2)
    lora_exact(pipe, lora, render, r"keeps its weight quantized \(GGUF .*nothing was fused")


def _variant(**config):
    """An ERNIE-Image of another depth and width than any shipped config (3 layers, 3 heads of 16, FFN 96, text
    32 wide through text_proj unless ``config`` says otherwise)."""
    from diffusers import ErnieImageTransformer2DModel

    from loradeck.core.models.tiny_parts import awaken

    pipe = fresh(KEY)
    torch.manual_seed(3)
    config = {"hidden_size": 48, "num_attention_heads": 3, "num_layers": 3, "ffn_hidden_size": 96, "in_channels": 16,
              "out_channels": 16, "patch_size": 1, "text_in_dim": 32, "rope_axes_dim": (4, 6, 6), **config}
    pipe.transformer = awaken(ErnieImageTransformer2DModel(**config).eval(), seed=3)
    return pipe


def test_an_ernieimage_of_other_depth_and_width_loads_from_files_alone(tmp_path):
    variant = _variant()
    assert "text_proj.weight" in variant.transformer.state_dict()
    pipe = load_single_file(_models(tmp_path, variant.transformer.state_dict(),
                                    te=_comfy_te(variant.text_encoder.state_dict()),
                                    vae=flux2_vae_to_bfl(variant.vae.state_dict())), torch.float32, CPU)
    config = pipe.transformer.config
    assert (config.num_layers, config.hidden_size, config.num_attention_heads, config.ffn_hidden_size,
            config.text_in_dim) == (3, 48, 3, 96, 32)
    want = variant.transformer.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in pipe.transformer.state_dict().items())
    assert (render(pipe) - render(variant)).abs().max() <= 2 / 255


def test_what_the_shapes_cannot_tell_comes_from_a_config_folder(tmp_path):
    """Heads of 32 (2 x 32 = 64 wide): the tiny config's RoPE axes (4, 6, 6) cannot fit them; the error names the
    value and where it came from, and a diffusers folder of the model gives them."""
    pipe = _variant(hidden_size=64, num_attention_heads=2, num_layers=2, ffn_hidden_size=64,
                    rope_axes_dim=(8, 12, 12))
    path = _models(tmp_path, pipe.transformer.state_dict())
    message = load_error(path)
    assert "is a tiny ERNIE-Image (built-in) checkpoint" in message
    assert ("its attention heads are 32 wide (the denoiser's width 64 / layers.0.self_attention.norm_q.weight [32]), "
            "but rope_axes_dim [4, 6, 6] (the shipped tiny ERNIE-Image (built-in) config) adds up to 16") in message
    folder = str(tmp_path / "diffusers" / "wide")
    pipe.save_pretrained(folder)
    loaded = load_single_file(path, torch.float32, CPU, config_folders=(folder,))
    assert list(loaded.transformer.config.rope_axes_dim) == [8, 12, 12]


@pytest.mark.parametrize("layers", [36, 20])
def test_a_real_size_ernieimage_config_is_derived_from_its_shapes_on_the_meta_device(layers):
    """ERNIE-Image (36 layers, 32 heads of 128, FFN 12288, text 3072 through text_proj) and a shallower variant:
    shapes only (meta tensors, no memory)."""
    from diffusers import ErnieImageTransformer2DModel

    from loradeck.core.families import SINGLE_FILE_ARCHS
    from loradeck.core.models import configs
    from loradeck.core.models.arch import Header
    from loradeck.core.models.build import meta_component
    from loradeck.core.models.single_file import identify

    with torch.device("meta"):
        model = ErnieImageTransformer2DModel(hidden_size=4096, num_attention_heads=32, num_layers=layers,
                                             ffn_hidden_size=12288, in_channels=128, out_channels=128,
                                             text_in_dim=3072, rope_axes_dim=(32, 48, 48))
    shapes = {"model.diffusion_model." + k: tuple(v.shape) for k, v in model.state_dict().items()}
    header = Header("/models/diffusion_models/ernie-image.safetensors", shapes, {}, {}, None)
    arch = identify(header)
    assert arch.key == "ernie-image" and arch in SINGLE_FILE_ARCHS
    resolved = configs.resolve(arch, header)
    try:
        config = ErnieImageTransformer2DModel.load_config(resolved.arch.config_dir, subfolder="transformer")
        assert {k: config[k] for k in ("num_layers", "hidden_size", "num_attention_heads", "ffn_hidden_size",
                                       "text_in_dim", "in_channels")} == \
            {"num_layers": layers, "hidden_size": 4096, "num_attention_heads": 32, "ffn_hidden_size": 12288,
             "text_in_dim": 3072, "in_channels": 128}
        assert resolved.source("transformer", "num_layers") == f"the denoiser's {layers} layers"
        built = meta_component(resolved.arch.config_dir, "transformer")
        assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in model.state_dict().items()}
        text = meta_component(resolved.arch.config_dir, "text_encoder").language_model
        assert text.embed_tokens.weight.shape == (131072, 3072) and len(text.layers) == 26
        vae = meta_component(resolved.arch.config_dir, "vae")
        assert vae.config.latent_channels == 32
    finally:
        resolved.cleanup()


def test_missing_parts_are_named_in_one_sentence_each(tmp_path):
    path = _models(tmp_path, DENOISER, te="", vae=None)
    message = load_error(path)
    assert "'ernieimage_tiny_bf16.safetensors' is a tiny ERNIE-Image (built-in) checkpoint" in message
    assert "Ministral 3 3B text encoder (text_encoder: width 32, 2 layers;" in message
    assert "put flux2-vae.safetensors (the FLUX.2 VAE) in models/vae" in message


def test_a_text_encoder_without_every_layer_is_refused(tmp_path):
    """ERNIE-Image reads the second-to-last hidden state: a Ministral 3 file pruned of its last layer is refused,
    naming the file and the layers."""
    te = {k: v for k, v in _comfy_te(fresh(KEY).text_encoder.state_dict()).items()
          if not k.startswith("model.layers.1.")}
    with pytest.raises(PipelineLoadError, match=r"ministral-3-3b.safetensors.*has 1 layers, the Ministral 3 text "
                                                r"encoder 2"):
        load_single_file(_models(tmp_path, DENOISER, te=te), torch.float32, CPU)



def test_the_tekken_tokenizer_comes_from_the_file_and_puts_bos_first(tmp_path):
    """ComfyUI's ministral-3-3b file carries the tekken tokenizer (``tekken_model``): read from the file, it encodes
    a prompt as ERNIE-Image's pipeline asks (``add_special_tokens=True``, no template) with ``<s>`` first, as
    ComfyUI's ERNIE tokenizer does (start token 1), then the text's tokens."""
    from test_model_files_flux2 import _tekken

    from loradeck.core.models import tokenizers
    from loradeck.core.models.tiny_parts import SPECIALS
    from single_file_fixtures import save

    data = _tekken(list(SPECIALS), [bytes([b]) for b in range(256)])
    tensors = {**load_file(fixture(TE)), "tekken_model": torch.frombuffer(bytearray(data), dtype=torch.uint8)}
    path = save(tensors, str(tmp_path / "text_encoders" / "ministral-3-3b.safetensors"))
    found, missing = tokenizers.resolve({"text_encoder": "ministral3"}, (), builtin=False, files={"text_encoder": path})
    assert not missing
    tokenizer = found["tokenizer"]
    ids = tokenizer("a cat", add_special_tokens=True).input_ids
    assert ids[0] == SPECIALS.index("<s>") == 1 and ids[1:] == tokenizer("a cat", add_special_tokens=False).input_ids
    assert tokenizer.decode(ids[1:]) == "a cat"
