"""Lumina Image 2.0's split files as ComfyUI users keep them: ``lumina_2_model_bf16.safetensors`` (or fp8, or a
``.gguf``) in diffusion_models/, ``gemma_2_2b_fp16.safetensors`` in text_encoders/ (its tokenizer inside, as
``spiece_model``), the FLUX.1 VAE ``ae.safetensors`` in vae/; or ComfyUI's all-in-one ``lumina_2.safetensors``.

The fixtures (tools/fixtures/generators/model_files/make_lumina2_fixtures.py) are LoRA Deck's tiny Lumina 2 as
ComfyUI's own modules hold it (its ``NextDiT``, its Gemma 2 language model: strict loads, their state dicts saved),
a sentencepiece model with the ids ComfyUI's tokenizer gives, and ComfyUI-GGUF's convert.py + gguf-py's quantizer;
each must load back to the tiny pipeline's weights (GGUF: gguf-py's dequantization) and give the diffusers folder's
images.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from model_file_fixtures import bits_equal, fixture, load_error, lora_exact, node_loads, place_models, quantized_layers
from safetensors.torch import load_file
from test_model_files import _fp8_layers, _placed, _scaled_fp8

from family_fixtures import PARAMS, fresh
from family_fixtures import render as render_with
from loradeck.core import Deck, PipelineLoadError
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import load_single_file
from original_layout import gemma2_to_comfy, lumina2_to_original, vae_to_ldm

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)
KEY = "lumina2"
DENOISER, TE = "lumina2_tiny_bf16.safetensors", "lumina2_tiny_te_bf16.safetensors"
BLOCKS = ("layers.", "noise_refiner.", "context_refiner.")


def render(pipe) -> torch.Tensor:
    return render_with(KEY, pipe, FAST)


def _vae(pipe) -> dict:
    return vae_to_ldm(pipe.vae.state_dict(), "")  # ae.safetensors: BFL's LDM names, no prefix


def _models(tmp_path, denoiser: str | dict, te: str | dict = TE, vae: dict | None = None) -> str:
    """``tmp_path/models`` with the denoiser (a fixture name, or tensors) in diffusion_models/, the Gemma 2 (a fixture,
    or tensors) in text_encoders/ and the VAE (tensors; the tiny pipeline's by default, ``{}``: none) in vae/."""
    vae = _vae(fresh(KEY)) if vae is None else vae
    return place_models(tmp_path, (("text_encoders", te, "gemma_2_2b_fp16.safetensors"),
                                   ("vae", vae, "ae.safetensors"),
                                   ("diffusion_models", denoiser, "lumina_2_model_tiny.safetensors")))


def test_comfyuis_files_hold_the_tiny_lumina2_in_its_layouts():
    """The fixtures ComfyUI's own modules wrote are the built-in tiny Lumina 2 (bf16) in ComfyUI's layouts, which are
    what tests/original_layout.py writes (so the tests below that build files with it test ComfyUI's layout)."""
    pipe = fresh(KEY)
    for name, want in ((DENOISER, lumina2_to_original(pipe.transformer.state_dict())),
                       (TE, gemma2_to_comfy(pipe.text_encoder.state_dict()))):
        stored = load_file(fixture(name))
        stored.pop("spiece_model", None)
        assert stored.keys() == want.keys(), name
        assert all(bits_equal(v, want[k].to(torch.bfloat16)) for k, v in stored.items()), name


def test_bf16_split_files_give_the_diffusers_folders_images(tmp_path, use_models):
    """Load Diffusion Model lists ComfyUI's bf16 denoiser file and loads it with the Gemma 2 and the FLUX.1 VAE found
    beside it by keys and shapes: the images of the diffusers folder of the same weights."""

    pipe = fresh(KEY)
    for component in (pipe.transformer, pipe.text_encoder, pipe.vae):
        component.to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / KEY)
    pipe.save_pretrained(folder)
    _models(tmp_path, DENOISER, vae={k: v.to(torch.bfloat16) for k, v in _vae(pipe).items()})
    loaded = node_loads(use_models, str(tmp_path / "models"), DENOISER)
    assert type(loaded).__name__ == "Lumina2Pipeline"
    for name in ("transformer", "text_encoder", "vae"):
        want = getattr(pipe, name).state_dict()
        got = getattr(loaded, name).state_dict()
        assert got.keys() == want.keys() and all(torch.equal(v, want[k]) for k, v in got.items()), name
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe  # with the family's fix, as the node's
    assert (render(loaded) - render(reference)).abs().max() <= 2 / 255


@pytest.mark.parametrize("fmt,prefix", [("scaled", ""), ("comfy_quant", ""), ("plain", ""),
                                        ("scaled", "model.diffusion_model.")])
def test_fp8_split_files_keep_fp8_weights_on_the_linears_the_name_table_places(fmt, prefix, tmp_path):
    """A Lumina 2 denoiser in ComfyUI's fp8 layouts (legacy scaled_fp8, per-layer comfy_quant, plain) with a Gemma 2
    in the same layout: every fp8 block layer stays fp8 where the family's table places it (the fused q/k/v split
    into to_q / to_k / to_v by rows, w1/w2/w3 on linear_1/2/3, adaLN_modulation.1 on norm1.linear) with exactly the
    dequantized rows, the encoder's weights equal the dequantization (dequantized at load), and (scaled) a LoRA on
    top equals it on the dequantized weights. Bare or under ``model.diffusion_model.``."""
    from lora_fixtures import save_family_lora

    source = fresh(KEY)
    denoiser = _scaled_fp8(lumina2_to_original(source.transformer.state_dict(), prefix),
                           tuple(prefix + b for b in BLOCKS), fmt)
    encoder = _scaled_fp8(gemma2_to_comfy(source.text_encoder.state_dict()), ("model.layers.",), fmt)
    pipe = load_single_file(_models(tmp_path, denoiser, te=encoder), torch.float32, CPU)
    layers = {k.removeprefix(prefix): v for k, v in _fp8_layers(denoiser).items()}
    kept = _placed(KEY, pipe.transformer, layers)
    assert len(layers) == 23 and len(kept) == 31  # per block: qkv (3 Linears), out, w1-w3, adaLN (context: none)
    assert set(kept.values()) == {"fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"}
    te = dict(pipe.text_encoder.named_modules())
    encoder_layers = _fp8_layers(encoder)
    assert len(encoder_layers) == 14 and not quantized_layers(pipe.text_encoder)
    for layer, dense in encoder_layers.items():
        assert torch.equal(te[layer.removeprefix("model.")].weight, dense), layer
    if fmt == "scaled":
        lora = save_family_lora(KEY, str(tmp_path / "lumina-lora.safetensors"), seed=2)
        lora_exact(pipe, lora, render, r"keeps its weight quantized \(fp8")


@pytest.mark.parametrize("name", ["lumina2_tiny-Q8_0.gguf", "lumina2_tiny-Q4_0.gguf"])
def test_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    """ComfyUI-GGUF files of the tiny Lumina 2 (arch lumina2) alone in diffusion_models/: every quantized tensor (the
    main layers'; lcpp.patch keeps embedders and refiners unquantized) stays quantized where the table places it with
    exactly gguf-py's dequantization, a LoRA on top equals it on the dequantized weights (unfused), and fusing is
    refused with the reason."""
    from lora_fixtures import save_family_lora

    kind = name.split("-")[1].split(".")[0]
    pipe = load_single_file(_models(tmp_path, name), torch.float32, CPU)
    reference = {k.removesuffix(".weight"): v for k, v in load_file(fixture(name.replace(
        ".gguf", ".expected.safetensors"))).items()}
    kept = _placed(KEY, pipe.transformer, reference)
    # lcpp.patch's img_tensor_get_type: a Q4_0 file keeps feed_forward.w2 in Q4_1, as ComfyUI-GGUF's Q4_0 files do
    want = {"GGUF Q8_0"} if kind == "Q8_0" else {"GGUF Q4_0", "GGUF Q4_1"}
    assert len(reference) == 12 and len(kept) == 16 and set(kept.values()) == want
    lora = save_family_lora(KEY, str(tmp_path / "lumina-lora.safetensors"), seed=2)
    lora_exact(pipe, lora, render, r"keeps its weight quantized \(GGUF .*nothing was fused")


def _variant(seed: int = 3, **config):
    """The tiny Lumina 2 with another transformer (same Gemma 2 and VAE)."""
    from diffusers import Lumina2Transformer2DModel

    from loradeck.core.models.tiny_parts import awaken

    pipe = fresh(KEY)
    torch.manual_seed(seed)
    base = dict(sample_size=8, patch_size=2, in_channels=4, multiple_of=16, norm_eps=1e-5, cap_feat_dim=16)
    pipe.transformer = awaken(Lumina2Transformer2DModel(**{**base, **config}).eval(), seed=seed)
    return pipe


def test_a_lumina2_of_other_depth_and_width_loads_from_files_alone(tmp_path):
    """3 heads of 16 with 3 KV heads, 3 layers, 2 refiners, a SwiGLU 1.5x as wide: read off the weights."""
    variant = _variant(hidden_size=48, num_layers=3, num_refiner_layers=2, num_attention_heads=3, num_kv_heads=3,
                       ffn_dim_multiplier=1.5, axes_dim_rope=(8, 4, 4))
    path = _models(tmp_path, lumina2_to_original(variant.transformer.state_dict()),
                   te=gemma2_to_comfy(variant.text_encoder.state_dict()))
    pipe = load_single_file(path, torch.float32, CPU)
    config = pipe.transformer.config
    assert (config.hidden_size, config.num_layers, config.num_refiner_layers, config.num_attention_heads,
            config.num_kv_heads, config.ffn_dim_multiplier) == (48, 3, 2, 3, 3, 1.5)
    want = variant.transformer.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in pipe.transformer.state_dict().items())
    assert (render(pipe) - render(variant)).abs().max() <= 2 / 255


def test_what_the_shapes_cannot_tell_comes_from_a_config_folder(tmp_path):
    """Heads of 32 (2 x 32 = 64 wide): the tiny config's RoPE axes (8, 4, 4) cannot fit them; the error names the
    value and where it came from, and a diffusers folder of the model gives them."""
    pipe = _variant(seed=4, hidden_size=64, num_layers=2, num_refiner_layers=1, num_attention_heads=2,
                    num_kv_heads=1, axes_dim_rope=(16, 8, 8))
    path = _models(tmp_path, lumina2_to_original(pipe.transformer.state_dict()))
    message = load_error(path)
    assert "is a tiny Lumina 2 (built-in) checkpoint" in message
    assert ("its attention heads are 32 wide (hidden_size / num_attention_heads: the denoiser's cap_embedder.1.weight "
            "[64, ...] / head width 32 (layers.0.attention.q_norm.weight)), but axes_dim_rope [8, 4, 4] (the shipped "
            "tiny Lumina 2 (built-in) config) adds up to 16") in message
    folder = str(tmp_path / "diffusers" / "wide")
    pipe.save_pretrained(folder)
    loaded = load_single_file(path, torch.float32, CPU, config_folders=(folder,))
    assert list(loaded.transformer.config.axes_dim_rope) == [16, 8, 8]
    assert (render(loaded) - render(pipe)).abs().max() <= 2 / 255


@pytest.mark.parametrize("config,layers", [({}, 26), ({"hidden_size": 1536, "num_attention_heads": 16,
                                                       "num_kv_heads": 4, "num_layers": 12,
                                                       "axes_dim_rope": (32, 32, 32)}, 12)])
def test_a_real_size_lumina2_config_is_derived_from_its_shapes_on_the_meta_device(config, layers):
    """Lumina Image 2.0 (26 layers, 24 heads of 96 with 8 KV heads, caption width 2304) and a smaller variant:
    shapes only (meta tensors, no memory); the real one is the shipped config itself."""
    from diffusers import Lumina2Transformer2DModel

    from loradeck.core.models import configs
    from loradeck.core.models.arch import Header
    from loradeck.core.models.build import meta_component
    from loradeck.core.models.single_file import LocalFiles, identify, plan

    with torch.device("meta"):
        model = Lumina2Transformer2DModel(cap_feat_dim=2304, **config)
    shapes = {k: tuple(v.shape) for k, v in lumina2_to_original(model.state_dict()).items()}
    header = Header("/models/diffusion_models/lumina_2_model_bf16.safetensors", shapes, {}, {}, None)
    arch = identify(header)
    assert arch.key == "lumina2"
    resolved = configs.resolve(arch, header)
    try:
        assert (resolved.temp is None) == (not config)
        built = meta_component(resolved.arch.config_dir, "transformer")
        assert built.config.num_layers == layers and resolved.source("transformer", "num_layers") == \
            f"the denoiser's {layers} layers"
        assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in model.state_dict().items()}
        text = meta_component(resolved.arch.config_dir, "text_encoder")
        assert text.embed_tokens.weight.shape == (256000, 2304) and len(text.layers) == 26
        assert meta_component(resolved.arch.config_dir, "vae").decoder.conv_in.weight.shape[:2] == (512, 16)
        message = " ".join(plan(header, resolved.arch, LocalFiles(), resolved).problems)
        assert "Gemma 2 2B text encoder (text_encoder: width 2304, 26 layers" in message
        assert "put gemma_2_2b_fp16.safetensors in models/text_encoders" in message
        assert "put ae.safetensors (the FLUX.1 VAE) in models/vae" in message
    finally:
        resolved.cleanup()


def test_lumina2_and_z_image_files_are_told_apart_at_any_size():
    """Both are ComfyUI's lumina2 image model; Lumina 2 modulates with adaLN_modulation.1 and has no pad tokens."""
    from diffusers import Lumina2Transformer2DModel, ZImageTransformer2DModel

    from loradeck.core.models.arch import Header
    from loradeck.core.models.single_file import identify
    from original_layout import zimage_to_original

    with torch.device("meta"):
        zimage, small_zimage = ZImageTransformer2DModel(), ZImageTransformer2DModel(n_layers=4)
        lumina = Lumina2Transformer2DModel(cap_feat_dim=2304, num_layers=4)
    for model, rename, want in ((zimage, zimage_to_original, "z-image"), (lumina, lumina2_to_original, "lumina2")):
        shapes = {k: tuple(v.shape) for k, v in rename(model.state_dict(), "").items()}
        assert identify(Header("/m/diffusion_models/x.safetensors", shapes, {}, {}, None)).key == want
    shapes = {k: tuple(v.shape) for k, v in zimage_to_original(small_zimage.state_dict(), "").items()}
    shapes["layers.0.attention.qkv.weight"] = (3 * 1536, 1536)  # a Z-Image of another width: still not Lumina 2
    with pytest.raises(PipelineLoadError) as err:
        identify(Header("/m/diffusion_models/x.safetensors", shapes, {}, {}, None))
    assert "Lumina" not in str(err.value).split("LoRA Deck loads single files of")[0]


def test_missing_parts_are_named_in_one_sentence_each(tmp_path):
    path = _models(tmp_path, DENOISER, te="", vae={})
    message = load_error(path)
    assert "'lumina2_tiny_bf16.safetensors' is a tiny Lumina 2 (built-in) checkpoint" in message
    assert ("it needs the Gemma 2 2B text encoder (text_encoder: width 16, 2 layers; hidden_size from the denoiser's "
            "cap_embedder.1.weight [32, 16]") in message
    assert "put gemma_2_2b_fp16.safetensors in models/text_encoders" in message
    assert ("a VAE (4 latent channels; latent_channels from the denoiser's x_embedder.weight [32, 16]: 2 x 2 "
            "patches)") in message
    assert "put ae.safetensors (the FLUX.1 VAE) in models/vae" in message


def test_newbie_files_are_named_not_loaded(tmp_path):
    from single_file_fixtures import save

    sd = load_file(fixture(DENOISER))
    path = save({**sd, "clip_text_pooled_proj.0.weight": torch.zeros(8)},
                str(tmp_path / "diffusion_models" / "newbie.safetensors"))
    with pytest.raises(PipelineLoadError, match="looks like a NewBie image model"):
        load_single_file(path, torch.float32, CPU)


def test_the_gemma_tokenizer_comes_from_the_encoder_files_spiece_model(tmp_path):
    """ComfyUI's Gemma files carry their sentencepiece model (``spiece_model``): read without the sentencepiece
    package, it gives the ids ComfyUI's own tokenizer gives (whitespace runs, tabs, newlines, byte fallback, digits);
    a damaged or foreign one is refused naming the file."""
    from loradeck.core.models import tokenizers
    from single_file_fixtures import save

    found, missing = tokenizers.resolve({"text_encoder": "gemma2_2b"}, [], builtin=False,
                                        files={"text_encoder": fixture(TE)})
    assert not missing and type(found["tokenizer"]).__name__ == "GemmaTokenizer"
    with open(fixture("lumina2_spiece.expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    tok = found["tokenizer"]
    assert len(tok) == expected["vocab_size"] and (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (0, 1, 2)
    for text, ids in expected["ids"].items():
        assert tok(text).input_ids == ids, text
    _, missing = tokenizers.resolve({"text_encoder": "gemma2_2b"}, [], builtin=False)
    assert missing == [tokenizers.FILES_NEEDED["gemma"]]
    te = load_file(fixture(TE))
    for spiece, why in ((b"\x0a\xffnot a model", "is not a sentencepiece model"),
                        (_unigram_model(), "is not a Gemma tokenizer")):
        path = save({**te, "spiece_model": torch.frombuffer(bytearray(spiece), dtype=torch.uint8)},
                    str(tmp_path / "gemma_2_2b_bad.safetensors"))
        with pytest.raises(PipelineLoadError, match=f"gemma_2_2b_bad.safetensors.*{why}"):
            tokenizers.resolve({"text_encoder": "gemma2_2b"}, [], builtin=False, files={"text_encoder": path})


def _unigram_model() -> bytes:
    """A sentencepiece Unigram model (T5's kind), written with transformers' protobuf schema."""
    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    for piece in ("<pad>", "</s>", "<unk>", "a"):
        proto.pieces.add(piece=piece, score=0.0)
    proto.trainer_spec.model_type = 1
    return proto.SerializeToString()


def test_a_diffusers_lumina2_folders_tokenizer_serves_split_files(tmp_path):
    """Headless without the spiece_model: the tokenizer/ folder of a diffusers Lumina 2 model among the folders."""
    from loradeck.core.models import tokenizers

    pipe = fresh(KEY)
    folder = tmp_path / "diffusers" / "lumina2"
    pipe.save_pretrained(str(folder))
    assert tokenizers.find("gemma", [str(tmp_path / "diffusers" / "lumina2")]) == str(folder / "tokenizer")
    found, missing = tokenizers.resolve({"text_encoder": "gemma2_2b"}, [str(folder)], builtin=False)
    assert not missing and found["tokenizer"]("a photo of a cat").input_ids == \
        pipe.tokenizer("a photo of a cat").input_ids


def test_an_all_in_one_checkpoint_in_comfyuis_layout_loads_every_part_from_itself(tmp_path):
    """ComfyUI's checkpoint layout (``lumina_2.safetensors``): the transformer under model.diffusion_model., Gemma 2
    under text_encoders.gemma2_2b.transformer.model., the VAE under vae.; nothing looked for elsewhere, every weight
    the tiny pipeline's."""
    from single_file_fixtures import save

    pipe = fresh(KEY)
    tensors = {**lumina2_to_original(pipe.transformer.state_dict(), "model.diffusion_model."),
               **gemma2_to_comfy(pipe.text_encoder.state_dict(), "text_encoders.gemma2_2b.transformer.model."),
               **{"vae." + k: v for k, v in _vae(pipe).items()}}
    loaded = load_single_file(save(tensors, str(tmp_path / "checkpoints" / "lumina_2_tiny.safetensors")),
                              torch.float32, CPU)
    for name in ("transformer", "text_encoder", "vae"):
        want = getattr(pipe, name).state_dict()
        assert all(torch.equal(v, want[k]) for k, v in getattr(loaded, name).state_dict().items()), name
    assert (render(loaded) - render(pipe)).abs().max() <= 2 / 255


def test_a_lora_in_comfyuis_names_equals_the_same_lora_in_diffusers_names(tmp_path):
    """The name table serves LoRA files in ComfyUI's names too (diffusion-pipe's and ComfyUI's own layout on the
    NextDiT): a fused ``attention.qkv`` LoRA is its B rows on to_q / to_k / to_v, ``w1`` / ``adaLN_modulation.1`` /
    ``t_embedder.mlp.0`` are linear_1 / norm1.linear / the timestep embedder's linear_1. Same images as the file in
    diffusers' names."""
    from safetensors.torch import save_file

    pipe = fresh(KEY)
    g = torch.Generator().manual_seed(5)
    comfy, peft = {}, {}
    for original, target, rows in (("layers.1.attention.qkv", ("attn.to_q", "attn.to_k", "attn.to_v"), (32, 16, 16)),
                                   ("noise_refiner.0.attention.qkv", ("attn.to_q", "attn.to_k", "attn.to_v"),
                                    (32, 16, 16)),
                                   ("layers.0.feed_forward.w1", ("feed_forward.linear_1",), (128,)),
                                   ("layers.0.adaLN_modulation.1", ("norm1.linear",), (128,)),
                                   ("t_embedder.mlp.0", ("time_caption_embed.timestep_embedder.linear_1",), (32,))):
        block = original.rpartition(".")[0].rpartition(".")[0] + "." if original.count(".") > 2 else ""
        fan_in = 256 if original.startswith("t_embedder") else 32
        down, up = torch.randn(4, fan_in, generator=g) * 0.1, torch.randn(sum(rows), 4, generator=g) * 0.1
        comfy[f"diffusion_model.{original}.lora_A.weight"] = down
        comfy[f"diffusion_model.{original}.lora_B.weight"] = up
        start = 0
        for name, n in zip(target, rows, strict=True):
            peft[f"transformer.{block}{name}.lora_A.weight"] = down.clone()
            peft[f"transformer.{block}{name}.lora_B.weight"] = up[start:start + n].contiguous()
            start += n
    files = {}
    for label, tensors in (("comfy", comfy), ("peft", peft)):
        files[label] = str(tmp_path / f"{label}.safetensors")
        save_file(tensors, files[label])
    images = {}
    for label, file in files.items():
        deck = Deck(fresh(KEY)).add(file, name="l", model=0.8)
        report = deck.owner.prepare(file).report
        assert report.matched == report.total == {"comfy": 5, "peft": 9}[label] and not report.partial, label
        images[label] = render(deck.pipe)
    assert (images["comfy"] - images["peft"]).abs().max() <= 1e-5
    assert (images["comfy"] - render(pipe)).abs().max() > 1e-3
