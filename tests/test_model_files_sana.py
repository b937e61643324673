"""Sana's split files: a Sana 1.0 denoiser in NVlabs' original names as .safetensors (bf16, ComfyUI's fp8 layouts,
GGUF) in diffusion_models/, the Gemma 2 text encoder in ComfyUI's layout (``model.*``) in text_encoders/, the DC-AE in
mit-han-lab's names in vae/; NVlabs' own pickled ``.pth`` originals are refused, saying why.

The fixtures (tools/fixtures/generators/model_files/make_sana_fixtures.py, make_family_fp8_fixtures.py) are LoRA
Deck's tiny Sana as NVlabs' SanaMS, ComfyUI's Gemma 2 and efficientvit's DCAE hold it after strict loads, ComfyUI's
own fp8 quantizer and ComfyUI-GGUF's convert.py + gguf-py's quantizer (on a 32-wide variant: the tiny model's
16-wide rows are no whole GGUF block); each must load back to the tiny pipeline's weights (quantized: the reference
dequantization) and give the diffusers folder's images.
"""

from __future__ import annotations

import copy
import dataclasses
import os

import pytest
import torch
from model_file_fixtures import bits_equal, fixture, load_error, lora_exact, node_loads, place_models, quantized_layers
from safetensors.torch import load_file
from test_model_files import _fp8_layers, _scaled_fp8

from family_fixtures import PARAMS, fresh
from family_fixtures import render as render_with
from loradeck.core import Deck, PipelineLoadError
from loradeck.core.models.original_names import RowSplit
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import load_single_file
from original_layout import dc_ae_to_original, gemma2_to_comfy, sana_to_original

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)
KEY = "sana"
DENOISER, TE, VAE = "sana_tiny_bf16.safetensors", "sana_tiny_te_bf16.safetensors", "sana_tiny_vae_bf16.safetensors"
DROPPED = ("pos_embed", "y_embedder.y_embedding")  # in the original files; diffusers' converter drops them
# make_sana_fixtures.VARIANT: the GGUF fixtures' 32-wide, one-block Sana (seed 5)
VARIANT = {"patch_size": 1, "in_channels": 4, "out_channels": 4, "num_layers": 1, "num_attention_heads": 4,
           "attention_head_dim": 8, "num_cross_attention_heads": 4, "cross_attention_head_dim": 8,
           "cross_attention_dim": 32, "caption_channels": 16, "sample_size": 32}


def render(pipe) -> torch.Tensor:
    return render_with(KEY, pipe, FAST)


def _models(tmp_path, denoiser: str | dict, te: str | dict = TE, vae: str | dict | None = VAE) -> str:
    return place_models(tmp_path, (("text_encoders", te, "gemma_2_2b_it.safetensors"),
                                   ("vae", vae, "dc-ae-f32c32-sana-1.0.safetensors"),
                                   ("diffusion_models", denoiser, "sana_tiny.safetensors")))


def _variant():
    """The 32-wide, one-block Sana of the GGUF fixtures, in the tiny pipeline (its encoder and VAE)."""
    from diffusers import SanaTransformer2DModel

    from loradeck.core.models.tiny_parts import awaken

    pipe = fresh(KEY)
    torch.manual_seed(5)
    pipe.transformer = awaken(SanaTransformer2DModel(**VARIANT).eval(), seed=5)
    return pipe


def _placed(transformer, layers: dict[str, torch.Tensor]) -> dict[str, str]:
    """Every quantized Linear holds exactly its rows of one original layer's weight, placed by Sana's name table
    (``attn.qkv`` split into q/k/v, ``cross_attn.kv_linear`` into k/v); every one of ``layers`` is placed."""
    from loradeck.core.families.sana.names import sana_names

    kept, table, placed = quantized_layers(transformer), sana_names(transformer), 0
    for layer, dense in layers.items():
        target = table[layer]
        parts = target.parts if isinstance(target, RowSplit) else [(target, ((0, dense.shape[0]),))]
        for name, ranges in parts:
            rows = torch.cat([dense[a:b] for a, b in ranges])
            assert name in kept and torch.equal(transformer.get_submodule(name).weight, rows), name
            placed += 1
    assert placed == len(kept) == 8 * len(transformer.transformer_blocks)  # q, k, v, out; q, k, v, out
    return kept


def _lora(pipe, path: str) -> str:
    """A LoRA on the attention Linears of ``pipe``'s own transformer (any width), saved by diffusers."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    model = copy.deepcopy(pipe.transformer)
    torch.manual_seed(2)
    config = LoraConfig(r=4, lora_alpha=2, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                        init_lora_weights=False)
    model.add_adapter(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(3.0)
    folder, weight_name = os.path.split(path)
    type(pipe).save_lora_weights(folder, weight_name=weight_name, transformer_lora_layers=get_peft_model_state_dict(
        model), transformer_lora_adapter_metadata=config.to_dict())
    return path


def test_the_fixtures_hold_the_tiny_sana_in_its_users_layouts():
    pipe = fresh(KEY)
    for name, want in ((DENOISER, sana_to_original(pipe.transformer.state_dict())),
                       (TE, gemma2_to_comfy(pipe.text_encoder.state_dict())),
                       (VAE, dc_ae_to_original(pipe.vae.state_dict()))):
        stored = load_file(fixture(name))
        extra = set(DROPPED) if name == DENOISER else set()
        assert set(stored) == set(want) | extra, name
        assert all(bits_equal(stored[k], v.to(torch.bfloat16)) for k, v in want.items()), name
    stored = load_file(fixture(DENOISER))
    assert stored["pos_embed"].shape == (1, 64, 16) and stored["y_embedder.y_embedding"].shape == (300, 16)


def test_bf16_split_files_give_the_diffusers_folders_images(tmp_path, use_models):
    """Load Diffusion Model loads the bf16 denoiser (with the original's pos_embed and null caption, which diffusers
    drops) with the Gemma 2 encoder and the DC-AE found beside it by keys and shapes: the images of the diffusers
    folder of the same weights."""

    pipe = fresh(KEY)
    for component in (pipe.transformer, pipe.text_encoder, pipe.vae):
        component.to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / KEY)
    pipe.save_pretrained(folder)
    _models(tmp_path, DENOISER)
    loaded = node_loads(use_models, str(tmp_path / "models"), DENOISER)
    assert type(loaded).__name__ == "SanaPipeline" and type(loaded.vae).__name__ == "AutoencoderDC"
    for name in ("transformer", "text_encoder", "vae"):
        want, got = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert got.keys() == want.keys() and all(torch.equal(v, want[k]) for k, v in got.items()), name
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe
    assert (render(loaded) - render(reference)).abs().max() <= 2 / 255


@pytest.mark.parametrize("name", ["sana_tiny_fp8_e4m3fn_mixed.safetensors", "sana_tiny_fp8_e4m3fn_scaled.safetensors"])
def test_comfyuis_own_fp8_files_equal_comfyuis_dequantization(name, tmp_path):
    """The fp8 files ComfyUI 0.8.0's quantizer wrote (per-layer comfy_quant; the legacy scaled_fp8 layout): every
    attention Linear stays fp8 where Sana's name table places its rows (the fused qkv and kv split), exactly
    ComfyUI's own float32 dequantization."""
    pipe = load_single_file(_models(tmp_path, name), torch.float32, CPU)
    reference = {k.removesuffix(".weight"): v for k, v in load_file(fixture(
        "sana_tiny_fp8_e4m3fn.expected.safetensors")).items()}
    kept = _placed(pipe.transformer, reference)
    assert set(kept.values()) == {"fp8 e4m3fn scaled"}


@pytest.mark.parametrize("fmt,prefix", [("scaled", ""), ("comfy_quant", ""), ("plain", ""),
                                        ("comfy_quant", "model.diffusion_model.")])
def test_fp8_split_files_keep_fp8_weights_through_its_name_table(fmt, prefix, tmp_path):
    """A Sana denoiser in ComfyUI's fp8 layouts with a Gemma 2 encoder in the same layout: every fp8 block layer stays
    fp8 where the name table places it, the encoder's weights equal the dequantization (dequantized at load), and
    (scaled) a LoRA on top equals it on the dequantized weights; fusing is refused. Bare or under
    ``model.diffusion_model.``."""
    from lora_fixtures import save_family_lora

    source = fresh(KEY)
    denoiser = _scaled_fp8(sana_to_original(source.transformer.state_dict(), prefix), (prefix + "blocks.",), fmt)
    encoder = _scaled_fp8(gemma2_to_comfy(source.text_encoder.state_dict()), ("model.layers.",), fmt)
    pipe = load_single_file(_models(tmp_path, denoiser, te=encoder), torch.float32, CPU)
    layers = {k.removeprefix(prefix): v for k, v in _fp8_layers(denoiser).items()}
    assert len(layers) == 10
    kept = _placed(pipe.transformer, layers)
    assert set(kept.values()) == {"fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"}
    te = dict(pipe.text_encoder.named_modules())
    encoder_layers = _fp8_layers(encoder)
    assert len(encoder_layers) == 14 and not quantized_layers(pipe.text_encoder)
    for layer, dense in encoder_layers.items():
        assert torch.equal(te[layer.removeprefix("model.")].weight, dense), layer
    if fmt == "scaled":
        lora = save_family_lora(KEY, str(tmp_path / "sana-lora.safetensors"), seed=2)
        lora_exact(pipe, lora, render, r"keeps its weight quantized \(fp8 .*nothing was fused")


@pytest.mark.parametrize("name", ["sana_tiny32-Q8_0.gguf", "sana_tiny32-Q4_0.gguf"])
def test_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    """ComfyUI-GGUF files of the 32-wide Sana (its heads from a diffusers folder of it: linear attention keeps no
    per-head weights): every quantized tensor stays quantized where the name table places its rows, exactly
    gguf-py's dequantization; a LoRA on top equals it on the dequantized weights (unfused); fusing is refused."""
    variant = _variant()
    folder = str(tmp_path / "diffusers" / "sana32")
    variant.save_pretrained(folder)
    kind = name.split("-")[1].split(".")[0]
    pipe = load_single_file(_models(tmp_path, name), torch.float32, CPU, config_folders=(folder,))
    reference = {k.removesuffix(".weight"): v for k, v in load_file(fixture(name.replace(
        ".gguf", ".expected.safetensors"))).items()}
    kept = _placed(pipe.transformer, reference)
    assert set(kept.values()) == {f"GGUF {kind}"}
    lora = _lora(variant, str(tmp_path / "sana32-lora.safetensors"))
    lora_exact(pipe, lora, render, r"keeps its weight quantized \(GGUF .*nothing was fused")


def test_a_sana_of_other_depth_and_mlp_loads_from_files_alone(tmp_path):
    """3 blocks and a Mix-FFN of ratio 3 (the tiny heads): the config is read off the weights."""
    from diffusers import SanaTransformer2DModel

    from loradeck.core.families.sana.tiny import tiny_transformer
    from loradeck.core.models.tiny_parts import awaken

    variant = fresh(KEY)
    config = {k: v for k, v in tiny_transformer(0).config.items() if not k.startswith("_")}
    config.update(num_layers=3, mlp_ratio=3.0)
    torch.manual_seed(3)
    variant.transformer = awaken(SanaTransformer2DModel.from_config(config).eval(), seed=3)
    pipe = load_single_file(_models(tmp_path, sana_to_original(variant.transformer.state_dict()),
                                    te=gemma2_to_comfy(variant.text_encoder.state_dict()),
                                    vae=dc_ae_to_original(variant.vae.state_dict())), torch.float32, CPU)
    assert (pipe.transformer.config.num_layers, pipe.transformer.config.mlp_ratio) == (3, 3.0)
    want = variant.transformer.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in pipe.transformer.state_dict().items())
    assert (render(pipe) - render(variant)).abs().max() <= 2 / 255


def test_what_the_shapes_cannot_tell_comes_from_a_config_folder(tmp_path):
    """The 32-wide Sana: the tiny config's 2 heads of 8 cannot fit its width; the error names the values and where
    they came from, and a diffusers folder of the model gives them (its images then equal the folder's)."""
    path = _models(tmp_path, "sana_tiny32_bf16.safetensors")
    message = load_error(path)
    assert "'sana_tiny32_bf16.safetensors' is a tiny Sana (built-in) checkpoint" in message
    assert ("its blocks are 32 wide (the denoiser's x_embedder.proj.weight [32, 4, 1, 1]), but num_attention_heads 2 "
            "x attention_head_dim 8 (the shipped tiny Sana (built-in) config) is 16") in message
    variant = _variant()
    folder = str(tmp_path / "diffusers" / "sana32")
    variant.save_pretrained(folder)
    pipe = load_single_file(path, torch.float32, CPU, config_folders=(folder,))
    assert (pipe.transformer.config.num_attention_heads, pipe.transformer.config.num_layers) == (4, 1)
    want = {k: v.to(torch.bfloat16) for k, v in variant.transformer.state_dict().items()}
    assert all(torch.equal(v.to(torch.bfloat16), want[k]) for k, v in pipe.transformer.state_dict().items())


@pytest.mark.parametrize("key,width,depth,heads,cross", [("sana-1600m", 2240, 20, 70, 20),
                                                         ("sana-600m", 1152, 28, 36, 16)])
def test_a_real_size_sana_config_is_derived_from_its_shapes_on_the_meta_device(key, width, depth, heads, cross):
    """Sana 1.6B and 0.6B from shapes only (meta tensors, no memory), with every component of their configs."""
    from diffusers import SanaTransformer2DModel

    from loradeck.core.families import SINGLE_FILE_ARCHS
    from loradeck.core.models import configs
    from loradeck.core.models.arch import Header
    from loradeck.core.models.build import meta_component
    from loradeck.core.models.single_file import identify

    with torch.device("meta"):
        model = SanaTransformer2DModel(in_channels=32, out_channels=32, num_attention_heads=heads,
                                       attention_head_dim=32, num_layers=depth, num_cross_attention_heads=cross,
                                       cross_attention_head_dim=width // cross, cross_attention_dim=width,
                                       caption_channels=2304)
    shapes = {k: tuple(v.shape) for k, v in sana_to_original(model.state_dict()).items()}
    shapes.update({"pos_embed": (1, 1024, width), "y_embedder.y_embedding": (300, 2304)})
    header = Header(f"/models/diffusion_models/{key}.safetensors", shapes, {}, {}, None)
    arch = identify(header)
    assert arch.key == key and arch in SINGLE_FILE_ARCHS
    resolved = configs.resolve(arch, header)
    try:
        built = meta_component(resolved.arch.config_dir, "transformer")
        assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert resolved.source("transformer", "num_layers") == f"the denoiser's {depth} blocks"
        text = meta_component(resolved.arch.config_dir, "text_encoder")
        assert text.embed_tokens.weight.shape == (256000, 2304) and len(text.layers) == 26
        vae = meta_component(resolved.arch.config_dir, "vae")
        assert vae.decoder.conv_in.weight.shape == (1024, 32, 3, 3) and vae.config.latent_channels == 32
    finally:
        resolved.cleanup()


def test_missing_parts_are_named_in_one_sentence_each(tmp_path):
    path = _models(tmp_path, DENOISER, te="", vae=None)
    message = load_error(path)
    assert "'sana_tiny_bf16.safetensors' is a tiny Sana (built-in) checkpoint" in message
    assert "Gemma 2 2B text encoder (text_encoder: width 16, 2 layers;" in message
    # the IT weights Sana was trained with, not Lumina 2's base gemma_2_2b_fp16 (one encoder kind serves both)
    assert "put a Gemma 2 2B IT file in ComfyUI's layout (model.*, spiece_model) in models/text_encoders" in message
    assert "put the Sana DC-AE (dc-ae-f32c32-sana-1.0's model.safetensors, mit-han-lab's names) in models/vae" \
        in message


def test_sana_15_and_sprint_files_are_named_not_loaded(tmp_path):
    """QK-normed attention (Sana 1.5, Sana Sprint): diffusers' converter would drop those weights."""
    tensors = sana_to_original(fresh(KEY).transformer.state_dict())
    tensors["blocks.0.attn.q_norm.weight"] = torch.ones(16)
    with pytest.raises(PipelineLoadError, match="a Sana 1.5 or Sana Sprint model"):
        load_single_file(_models(tmp_path, tensors), torch.float32, CPU)


def test_a_pickled_sana_original_is_refused_naming_why(tmp_path):
    """NVlabs' original checkpoints are pickled .pth files: refused before anything is read, saying why (LoRA Deck
    never unpickles a user's file)."""
    path = tmp_path / "models" / "diffusion_models" / "Sana_1600M_1024px.pth"
    os.makedirs(path.parent)
    path.write_bytes(b"not read")
    with pytest.raises(PipelineLoadError, match=r"Sana_1600M_1024px\.pth.*is not a \.safetensors or \.gguf file.*"
                                                r"pickle \.ckpt / \.pth files.*can run code"):
        load_single_file(str(path), torch.float32, CPU)


def test_the_gemma_tokenizer_comes_from_the_files_spiece_model(tmp_path):
    """ComfyUI's Gemma files carry Gemma's sentencepiece BPE model as ``spiece_model``: the tokenizer built from it
    (transformers' GemmaConverter's way) encodes as the tokenizer of the same vocabulary, with ``<bos>`` first as
    Gemma's own tokenizer.json puts it; bytes that are no Gemma model are refused naming the file."""
    from safetensors.torch import save_file
    from transformers.convert_slow_tokenizer import import_protobuf

    from loradeck.core.models.tiny_parts import tiny_gemma_tokenizer
    from loradeck.core.models.tokenizers import in_file

    reference = tiny_gemma_tokenizer()
    proto = import_protobuf().ModelProto()
    for token, _ in sorted(reference.get_vocab().items(), key=lambda item: item[1]):
        piece = proto.pieces.add()
        piece.piece, piece.score = token, 0.0
    proto.trainer_spec.model_type = 2  # BPE
    te = dict(load_file(fixture(TE)))
    te["spiece_model"] = torch.frombuffer(bytearray(proto.SerializeToString()), dtype=torch.uint8)
    path = str(tmp_path / "gemma_2_2b_it.safetensors")
    save_file(te, path)
    tokenizer = in_file(path, "gemma")
    for text in ("a cat", "Given a user prompt, generate an image"):  # <bos> first, as Gemma's tokenizer.json
        assert tokenizer(text).input_ids == [reference.convert_tokens_to_ids("<bos>"), *reference(text).input_ids]
        assert tokenizer(text, add_special_tokens=False).input_ids == reference(text).input_ids, text
    assert tokenizer.padding_side == "right" and tokenizer.pad_token_id == 0
    te["spiece_model"] = torch.frombuffer(bytearray(b"\x00\x01not a model"), dtype=torch.uint8)
    save_file(te, path)
    with pytest.raises(PipelineLoadError, match="gemma_2_2b_it.safetensors"):
        in_file(path, "gemma")


@pytest.mark.parametrize("damage", ["truncated", "scale 0", "scale nan", "bad comfy_quant"])
def test_damaged_sana_files_are_refused_naming_them(damage, tmp_path):
    """A truncated GGUF, fp8 scales of 0 or NaN and unreadable comfy_quant JSON: refused, naming the file."""
    folder = str(tmp_path / "diffusers" / "sana32")
    _variant().save_pretrained(folder)
    if damage == "truncated":
        with open(fixture("sana_tiny32-Q8_0.gguf"), "rb") as f:
            data = f.read()
        path = tmp_path / "models" / "diffusion_models" / "sana_damaged.gguf"
        _models(tmp_path, "sana_tiny32-Q8_0.gguf")
        path.write_bytes(data[: len(data) - 4096])
        name = "sana_damaged.gguf"
    else:
        tensors = dict(load_file(fixture("sana_tiny_fp8_e4m3fn_mixed.safetensors")))
        layer = "blocks.0.attn.qkv"
        if damage == "bad comfy_quant":
            tensors[layer + ".comfy_quant"] = torch.frombuffer(bytearray(b'{"format": '), dtype=torch.uint8)
        else:
            tensors[layer + ".weight_scale"] = torch.tensor(0.0 if damage == "scale 0" else float("nan"))
        path, name = _models(tmp_path, tensors), "sana_tiny.safetensors"
    with pytest.raises(PipelineLoadError, match=name.replace(".", r"\.")):
        load_single_file(str(path), torch.float32, CPU, config_folders=(folder,))
