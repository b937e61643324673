"""FLUX.2 [klein] and [dev] split files as ComfyUI users keep them: the denoiser alone in diffusion_models/ (BFL
names; bf16, ComfyUI's fp8 layouts, ComfyUI-GGUF), the text encoder in text_encoders/ (klein: Qwen3, dev: the Mistral
Small 3 text model, full or pruned to 30 layers, its tekken tokenizer inside; ComfyUI's ``model.`` names), the FLUX.2
VAE in vae/ (BFL's names, ``flux2-vae.safetensors``), loaded offline by Load Diffusion Model.

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
from model_file_fixtures import bits_equal, dequantized_copy, expected, fixture, quantized_layers
from safetensors.torch import load_file
from test_model_files import _fp8_layers, _scaled_fp8

from family_fixtures import PARAMS, fresh
from family_fixtures import render as render_with
from loradeck.core import Deck, FuseError, PipelineLoadError
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import load_single_file

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)
BLOCKS = ("double_blocks.", "single_blocks.", "double_stream_modulation_", "single_stream_modulation.")
ENCODER_FILE = {"flux2": "qwen_3_4b.safetensors", "flux2dev": "mistral_3_small_flux2_bf16.safetensors"}
ENCODER_LAYERS = {"flux2": 28, "flux2dev": 31}  # the tiny encoders' depths (7 Linear layers each)


def _load(path: str, dtype=torch.float32, **kwargs):
    return load_single_file(path, dtype, CPU, **kwargs)


def _render(pipe, key: str = "flux2"):
    return render_with(key, pipe, FAST)


def _encoder(pipe, key: str = "flux2") -> dict:
    """The text encoder as ComfyUI's files hold it, transformers' names under ``model.`` and no LM head (the
    pipelines read hidden states only): klein's Qwen3 model (``qwen_3_4b.safetensors``), dev's Mistral text model
    (``mistral_3_small_flux2_bf16.safetensors``: Mistral 3's language model, no vision tower)."""
    from original_layout import qwen3_to_comfy

    if key == "flux2dev":
        return qwen3_to_comfy(pipe.text_encoder.model.language_model.state_dict())
    return qwen3_to_comfy(pipe.text_encoder.model.state_dict())


def _parts(pipe, models, encoder: dict | None = None, key: str = "flux2") -> None:
    """Text encoder and VAE of ``pipe`` in ComfyUI's folders."""
    from original_layout import flux2_vae_to_bfl
    from single_file_fixtures import save

    save(encoder if encoder is not None else _encoder(pipe, key), str(models / "text_encoders" / ENCODER_FILE[key]))
    save(flux2_vae_to_bfl(pipe.vae.state_dict()), str(models / "vae" / "flux2-vae.safetensors"))


def _placed(transformer, layers: dict[str, torch.Tensor]) -> dict[str, str]:
    """Every quantized Linear holds exactly its rows of one of ``layers`` (original layer -> reference dense weight),
    placed by the FLUX.2 table, and every one of ``layers`` is placed. Returns the kept layers."""
    from loradeck.core.families.flux2.names import flux2_names

    kept, table, placed = quantized_layers(transformer), flux2_names(transformer), 0
    for layer, dense in layers.items():
        target = table[layer]
        parts = [(target, ((0, dense.shape[0]),))] if isinstance(target, str) else target.parts
        for name, ranges in parts:
            rows = torch.cat([dense[a:b] for a, b in ranges])
            assert name in kept and torch.equal(transformer.get_submodule(name).weight, rows), name
            placed += 1
    assert placed == len(kept) > 0
    return kept


# --- images: bf16 split files give the diffusers folder's images ------------------------------------------------
PIPELINES = {"flux2": "Flux2KleinPipeline", "flux2dev": "Flux2Pipeline"}


@pytest.mark.parametrize("key", list(PIPELINES))
def test_flux2_bf16_split_files_give_the_diffusers_folders_images(key, tmp_path, use_models):
    from loradeck.nodes import NODE_CLASS_MAPPINGS
    from original_layout import flux2_to_original
    from single_file_fixtures import save

    pipe, models = fresh(key), tmp_path / "models"
    for component in (pipe.transformer, pipe.text_encoder, pipe.vae):
        component.to(torch.bfloat16)  # the weights as ComfyUI's bf16 files hold them
    folder = str(tmp_path / "diffusers" / key)
    pipe.save_pretrained(folder)
    _parts(pipe, models, key=key)
    save(flux2_to_original(pipe.transformer.state_dict()), str(models / "diffusion_models" / f"{key}-tiny.safetensors"))
    use_models(str(models))
    node = NODE_CLASS_MAPPINGS["LoadDiffusionModel|LoRADeck"]()
    assert f"{key}-tiny.safetensors" in node.INPUT_TYPES()["required"]["unet_name"][0]
    loaded = node.load(f"{key}-tiny.safetensors", "bfloat16")[0].owner.pipe
    assert type(loaded).__name__ == PIPELINES[key] and type(loaded.vae).__name__ == "AutoencoderKLFlux2"
    want = {**{f"transformer.{k}": v for k, v in pipe.transformer.state_dict().items()},
            **{f"vae.{k}": v for k, v in pipe.vae.state_dict().items()}}
    got = {**{f"transformer.{k}": v for k, v in loaded.transformer.state_dict().items()},
           **{f"vae.{k}": v for k, v in loaded.vae.state_dict().items()}}
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k].to(got[k].dtype)) for k in want)
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe
    assert (_render(loaded, key) - _render(reference, key)).abs().max() <= 2 / 255


def test_flux2_dev_takes_comfyuis_pruned_mistral_encoder(tmp_path):
    """ComfyUI also ships dev's encoder pruned to the 30 layers FLUX.2 reads, without the final norm
    (``MISTRAL3_24B_PRUNED_FLUX2``): it gives the full encoder's hidden state 30, so the same images."""
    from original_layout import flux2_to_original
    from single_file_fixtures import save

    source, models = fresh("flux2dev"), tmp_path / "models"
    full = _encoder(source, "flux2dev")
    pruned = {k: v for k, v in full.items() if k != "model.norm.weight" and not k.startswith("model.layers.30.")}
    _parts(source, models, pruned, key="flux2dev")
    path = str(models / "diffusion_models" / "d.safetensors")
    pipe = _load(save(flux2_to_original(source.transformer.state_dict()), path))
    assert len(pipe.text_encoder.layers) == 30 and isinstance(pipe.text_encoder.norm, torch.nn.Identity)
    assert torch.equal(_render(pipe, "flux2dev"), _render(Deck(source).pipe, "flux2dev"))
    few = {k: v for k, v in pruned.items() if not k.startswith("model.layers.29.")}
    _parts(source, models, few, key="flux2dev")
    with pytest.raises(PipelineLoadError, match=r"'mistral_3_small_flux2_bf16.safetensors' \(text_encoder.*has 29 "
                                                r"layers; FLUX.2 reads hidden state 30"):
        _load(path)


# --- fp8: each layout kept in 8 bits on the Linear(s) the FLUX.2 table names ------------------------------------
@pytest.mark.parametrize("fmt", ["scaled", "comfy_quant", "plain"])
@pytest.mark.parametrize("key", list(PIPELINES))
def test_flux2_fp8_split_files_keep_fp8_weights(key, fmt, tmp_path):
    """A klein / dev denoiser in ComfyUI's fp8 layouts (legacy scaled_fp8, per-layer comfy_quant, plain), blocks and
    the shared modulation layers in fp8, with its text encoder in the same layout: every fp8 denoiser layer stays
    fp8 on the diffusers Linear(s) the FLUX.2 table names (double blocks' qkv split in thirds, single blocks'
    linear1 fused) with exactly the dequantized rows; the encoder equals its dequantization; a LoRA on top (scaled)
    equals it on the dequantized weights."""
    from lora_fixtures import save_family_lora
    from original_layout import flux2_to_original
    from single_file_fixtures import save

    source, models = fresh(key), tmp_path / "models"
    denoiser = _scaled_fp8(flux2_to_original(source.transformer.state_dict()), BLOCKS, fmt)
    encoder = _scaled_fp8(_encoder(source, key), ("model.layers.",), fmt)
    _parts(source, models, encoder, key=key)
    pipe = _load(save(denoiser, str(models / "diffusion_models" / f"{key}-tiny_fp8_e4m3fn_{fmt}.safetensors")))
    kind = "fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"
    kept = _placed(pipe.transformer, _fp8_layers(denoiser))
    # per double block 2 fused qkv (3 Linears each) + 2 proj + 4 MLP; per single block 2; 3 shared modulations
    assert set(kept.values()) == {kind} and len(kept) == 2 * 12 + 2 * 2 + 3
    te = dict(pipe.text_encoder.named_modules())
    layers = _fp8_layers(encoder)
    if key == "flux2dev":  # built as the Mistral text model itself (no "model." level)
        layers = {k.removeprefix("model."): v for k, v in layers.items()}
    assert len(layers) == ENCODER_LAYERS[key] * 7
    assert all(torch.equal(te[layer].weight, dense) for layer, dense in layers.items())
    if fmt == "scaled":
        lora = save_family_lora(key, str(tmp_path / f"{key}-lora.safetensors"), seed=2)
        quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
        assert torch.equal(_render(quant_deck.pipe, key), _render(dense_deck.pipe, key))


def _lora_on(key: str, modules: list[str], path: str) -> str:
    """A diffusers LoRA of the tiny ``key`` transformer on exactly ``modules`` (peft, non-zero B)."""
    from diffusers import Flux2Pipeline
    from peft import LoraConfig, get_peft_model_state_dict

    transformer = fresh(key).transformer
    torch.manual_seed(4)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=2, target_modules=modules, init_lora_weights=False))
    folder, name = os.path.split(path)
    Flux2Pipeline.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(transformer),
                                    weight_name=name)
    return path


# --- GGUF: ComfyUI-GGUF's files equal gguf-py's dequantization, LoRAs unfused on top ---------------------------
# quantized tensors per file: klein's blocks and shared modulations (img_in/txt_in/time_in/final_layer stay BF16);
# the 48-wide dev's rows are mostly not whole Q blocks (F16 fallback): its two single-block linear2
GGUF = {"flux2_tiny-Q8_0.gguf": 23, "flux2_tiny-Q4_0.gguf": 23, "flux2dev_tiny-Q4_0.gguf": 2}


@pytest.mark.parametrize("name", list(GGUF))
def test_flux2_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    from original_layout import flux2_to_original

    key, kind = name.split("_")[0], name.split("-")[1].split(".")[0]
    source, models = fresh(key), tmp_path / "models"
    # the files' bf16 source is the built-in tiny model (seed 0) in BFL's names
    want = {k: v.to(torch.bfloat16) for k, v in flux2_to_original(source.transformer.state_dict()).items()}
    stored = load_file(fixture(f"{key}_tiny_bf16.safetensors"))
    assert stored.keys() == want.keys() and all(bits_equal(v, want[k]) for k, v in stored.items())
    _parts(source, models, key=key)
    os.makedirs(models / "diffusion_models")
    pipe = _load(str(shutil.copyfile(fixture(name), models / "diffusion_models" / name)))
    reference = {k.removesuffix(".weight"): v for k, v in expected(name).items()}
    assert len(reference) == GGUF[name]
    kept = _placed(pipe.transformer, reference)
    assert set(kept.values()) == {f"GGUF {kind}"}
    lora = _lora_on(key, sorted(kept), str(tmp_path / f"{key}-lora.safetensors"))  # on every quantized layer
    quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
    assert torch.equal(_render(quant_deck.pipe, key), _render(dense_deck.pipe, key))
    carriers = [n for n, m in pipe.transformer.named_modules() if hasattr(m, "base_layer")
                and hasattr(m.base_layer, "quantized")]
    assert set(kept) <= set(carriers)  # the LoRA runs on every quantized layer, unfused
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


ENCODER_NEEDED = {  # what a missing text encoder of each real size is called, with the values that decided it
    "klein-4b": "Qwen3-4B text encoder (text_encoder: width 2560, 36 layers; hidden_size from the denoiser's "
                "txt_in.weight [3072, 7680]: 3 stacked text-encoder hidden states",
    "klein-9b": "Qwen3-8B text encoder (text_encoder: width 4096, 36 layers; hidden_size from the denoiser's "
                "txt_in.weight [4096, 12288]: 3 stacked text-encoder hidden states",
    "dev": "Mistral Small 3 text encoder (text_encoder: width 5120, 40 layers; hidden_size from the shipped FLUX.2 "
           "[dev] config"}


@pytest.mark.parametrize("key,config", [
    ("klein-4b", dict(num_layers=5, num_single_layers=20, num_attention_heads=24, joint_attention_dim=7680,
                      guidance_embeds=False)),
    ("klein-9b", dict(num_layers=8, num_single_layers=24, num_attention_heads=32, joint_attention_dim=12288,
                      guidance_embeds=False)),
    ("klein-4b", dict(num_layers=3, num_single_layers=10, num_attention_heads=24, joint_attention_dim=7680,
                      guidance_embeds=False)),  # a pruned klein: another depth, the 4B's width
    ("dev", dict(num_layers=8, num_single_layers=48, num_attention_heads=48, joint_attention_dim=15360,
                 guidance_embeds=True)),
])
def test_real_size_flux2_configs_come_from_the_weights(key, config):
    """Real-size FLUX.2 [klein] and [dev] files on the meta device (shapes only): the row, the transformer config
    (depth, width, heads, MLP, text width) read off the weights, the text encoder and VAE they require, and a model
    built from that config has the file's every key and shape after diffusers' own converter."""
    from diffusers import Flux2Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

    from loradeck.core.models import configs
    from loradeck.core.models.single_file import LocalFiles, identify, plan

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
        with open(os.path.join(folder, "text_encoder", "config.json"), encoding="utf-8") as f:
            text = json.load(f)
        assert text.get("text_config", text)["hidden_size"] * 3 == config["joint_attention_dim"]
        if key != "dev":  # klein's encoder width is a requirement derived from txt_in (dev's is nested: checked when
            # its file is picked, by fits)
            assert resolved.source("text_encoder", "hidden_size").startswith("the denoiser's txt_in.weight")
        problems = plan(header, resolved.arch, LocalFiles(), resolved).problems  # nothing beside it: both named
        assert len(problems) == 2 and ENCODER_NEEDED[key] in problems[0]
        assert "a VAE (32 latent channels; latent_channels from the denoiser's img_in.weight" in problems[1]
        assert "put flux2-vae.safetensors (the FLUX.2 VAE) in models/vae" in problems[1]
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


def _tekken(specials, vocab_bytes) -> bytes:
    """A tekken.json (Mistral's tokenizer format, as ``mistral_3_small_flux2_*.safetensors`` carry it in their
    ``tekken_model`` tensor): special tokens first, then byte-level BPE ranks."""
    import base64

    pattern = r"[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    return json.dumps({
        "config": {"pattern": pattern,
                   "num_vocab_tokens": len(vocab_bytes), "default_vocab_size": len(specials) + len(vocab_bytes),
                   "default_num_special_tokens": len(specials), "version": "v7"},
        "vocab": [{"rank": i, "token_bytes": base64.b64encode(b).decode(), "token_str": None}
                  for i, b in enumerate(vocab_bytes)],
        "special_tokens": [{"rank": i, "token_str": t, "is_control": True} for i, t in enumerate(specials)],
    }).encode()


def test_the_mistral_tokenizer_comes_from_comfyuis_encoder_file(tmp_path):
    """ComfyUI's Mistral text-encoder files carry the tekken tokenizer as a uint8 tensor ``tekken_model``: it is read
    from the file (transformers' own ``convert_tekken_tokenizer``, FLUX.2's chat template, left padding) and
    tokenizes FLUX.2 [dev]'s prompts exactly as the tiny model's tokenizer of the same vocabulary."""
    from diffusers.pipelines.flux2.pipeline_flux2 import SYSTEM_MESSAGE, format_input

    from loradeck.core.models import tokenizers
    from loradeck.core.models.tiny_parts import SPECIALS, tiny_mistral_tokenizer
    from single_file_fixtures import save

    data = _tekken(list(SPECIALS), [bytes([b]) for b in range(256)])
    tensors = {**_encoder(fresh("flux2dev"), "flux2dev"),
               "tekken_model": torch.frombuffer(bytearray(data), dtype=torch.uint8)}
    path = save(tensors, str(tmp_path / "text_encoders" / "mistral_3_small_flux2_bf16.safetensors"))
    found, missing = tokenizers.resolve({"text_encoder": "mistral3"}, (), builtin=False, files={"text_encoder": path})
    assert not missing
    messages = format_input(prompts=["a photo of a cat", "ünïcode, 42 — ok"], system_message=SYSTEM_MESSAGE)
    kwargs = dict(add_generation_prompt=False, tokenize=True, return_dict=True, return_tensors="pt",
                  padding="max_length", truncation=True, max_length=512)
    got, want = (t.apply_chat_template(messages, **kwargs) for t in (found["tokenizer"], tiny_mistral_tokenizer()))
    assert torch.equal(got["input_ids"], want["input_ids"])
    assert torch.equal(got["attention_mask"], want["attention_mask"])
    assert got["attention_mask"][0, 0] == 0 and got["input_ids"][0, -1] == SPECIALS.index("[/INST]")  # left padded
    plain = save(_encoder(fresh("flux2dev"), "flux2dev"), str(tmp_path / "plain.safetensors"))
    without, missing = tokenizers.resolve({"text_encoder": "mistral3"}, (), builtin=False,
                                          files={"text_encoder": plain})
    assert not without and missing == [tokenizers.FILES_NEEDED["mistral"]]
    folder = tmp_path / "tokenizers" / "mistral"  # a tekken.json in the tokenizer folders (Mistral's own repos)
    folder.mkdir(parents=True)
    (folder / "tekken.json").write_bytes(data)
    found, missing = tokenizers.resolve({"text_encoder": "mistral3"}, (str(folder.parent),), builtin=False,
                                        files={"text_encoder": plain})
    assert not missing and torch.equal(found["tokenizer"].apply_chat_template(messages, **kwargs)["input_ids"],
                                       want["input_ids"])
    tensors["tekken_model"] = torch.frombuffer(bytearray(b'{"config": [1, 2'), dtype=torch.uint8)  # damaged
    bad = save(tensors, str(tmp_path / "damaged.safetensors"))
    with pytest.raises(PipelineLoadError, match=r"damaged.safetensors.*tekken_model tokenizer data cannot be read"):
        tokenizers.resolve({"text_encoder": "mistral3"}, (), builtin=False, files={"text_encoder": bad})


def test_what_flux2_shapes_cannot_tell_comes_from_config_folders(tmp_path):
    """A klein of another head width (2 heads x 32): the shapes give its config but not RoPE's axes; the shipped
    tiny config's (4 x 4) cannot be right, and a diffusers folder of this model (config_folders) gives them."""
    from diffusers import Flux2Transformer2DModel

    from original_layout import flux2_to_original
    from single_file_fixtures import save

    source, models = fresh("flux2"), tmp_path / "models"
    torch.manual_seed(5)
    source.transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=3, attention_head_dim=32, num_attention_heads=2,
        joint_attention_dim=48, mlp_ratio=3.0, axes_dims_rope=(8, 8, 8, 8), rope_theta=2000,
        guidance_embeds=False).eval()
    _parts(source, models)
    path = save(flux2_to_original(source.transformer.state_dict()), str(models / "diffusion_models" / "w.safetensors"))
    with pytest.raises(PipelineLoadError) as err:
        _load(path)
    assert ("heads are 32 wide (the denoiser's double_blocks.0.img_attn.norm.query_norm.scale [32]), but "
            "axes_dims_rope [4, 4, 4, 4] (the shipped tiny FLUX.2 [klein] (built-in) config) adds up to 16"
            ) in str(err.value)
    folder = str(tmp_path / "diffusers" / "klein-wide")
    source.save_pretrained(folder)
    pipe = _load(path, config_folders=(folder,))
    config = pipe.transformer.config
    assert (config.num_layers, config.num_single_layers, list(config.axes_dims_rope)) == (1, 3, [8, 8, 8, 8])
    assert torch.equal(_render(pipe), _render(source))
