"""AuraFlow's model files: fal's / ComfyUI's all-in-one ``aura_flow_0.3.safetensors`` in checkpoints/, and the split
layout (the MMDiT alone in diffusion_models/: bf16, ComfyUI's fp8 layouts, GGUF; Pile-T5-XL in text_encoders/; the
SDXL VAE in vae/).

The fixtures (tools/fixtures/generators/model_files/make_auraflow_fixtures.py) are LoRA Deck's tiny AuraFlow as
ComfyUI's own MMDiT holds it (strict load; its forward equals diffusers'), its UMT5 encoder in the T5 names ComfyUI's
loader takes, and ComfyUI-GGUF's convert.py + gguf-py's quantizer; each must load back to the tiny pipeline's weights
(GGUF: gguf-py's dequantization) and give the diffusers folder's images.
"""

from __future__ import annotations

import dataclasses
import os
import re

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
from original_layout import auraflow_to_original, t5_to_ldm, vae_to_ldm

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)
KEY = "auraflow"
DENOISER, TE = "auraflow_tiny_bf16.safetensors", "auraflow_tiny_te_bf16.safetensors"
PREFIX = "model.diffusion_model."
BLOCKS = ("double_layers.", "single_layers.")


def render(pipe) -> torch.Tensor:
    return render_with(KEY, pipe, FAST)


def _vae(pipe=None) -> dict:
    """The tiny VAE as the SDXL VAE's single file holds it (LDM names)."""
    return vae_to_ldm((pipe or fresh(KEY)).vae.state_dict(), prefix="")


def _models(tmp_path, denoiser: str | dict, te: str | dict | None = TE, vae: dict | None = None,
            folder: str = "diffusion_models", name: str = "auraflow_tiny.safetensors") -> str:
    return place_models(tmp_path, (("text_encoders", te, "pile_t5xl_bf16.safetensors"),
                                   ("vae", _vae() if vae is None else vae, "sdxl_vae.safetensors"),
                                   (folder, denoiser, name)))


def test_the_fixtures_hold_the_tiny_auraflow_in_comfyuis_layouts():
    pipe = fresh(KEY)
    for name, want in ((DENOISER, auraflow_to_original(pipe.transformer.state_dict())),
                       (TE, t5_to_ldm(pipe.text_encoder.state_dict(), ""))):
        stored = load_file(fixture(name))
        assert stored.keys() == want.keys(), name
        assert all(bits_equal(v, want[k].to(torch.bfloat16)) for k, v in stored.items()), name


def test_the_manifest_lists_every_auraflow_fixture_as_its_generator_made_it():
    import hashlib
    import json

    with open(fixture("MANIFEST_auraflow.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    folder = os.path.dirname(fixture(DENOISER))
    assert sorted(manifest["files"]) == sorted(n for n in os.listdir(folder) if n.startswith("auraflow_tiny"))
    for name, entry in manifest["files"].items():
        with open(os.path.join(folder, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == entry["sha256"], name
    made_by = manifest["files"][DENOISER]["made_by"]
    assert "strict load into comfy MMDiT" in made_by and "maps it back exactly" in made_by


def test_bf16_split_files_give_the_diffusers_folders_images(tmp_path, use_models):
    """Load Diffusion Model loads the bf16 MMDiT with the Pile-T5 encoder and the SDXL-layout VAE found beside it by
    keys and shapes: the diffusers folder's weights and images."""

    pipe = fresh(KEY)
    for component in (pipe.transformer, pipe.text_encoder, pipe.vae):
        component.to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / KEY)
    pipe.save_pretrained(folder)
    _models(tmp_path, DENOISER, vae=_vae(pipe))
    loaded = node_loads(use_models, str(tmp_path / "models"), DENOISER)
    assert type(loaded).__name__ == "AuraFlowPipeline"
    for name in ("transformer", "text_encoder", "vae"):
        want = getattr(pipe, name).state_dict()
        assert all(torch.equal(v, want[k]) for k, v in getattr(loaded, name).state_dict().items()), name
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe
    assert (render(loaded) - render(reference)).abs().max() <= 2 / 255


def test_an_all_in_one_checkpoint_loads_with_everything_inside(tmp_path):
    """ComfyUI's checkpoint layout (fal's aura_flow_0.3.safetensors): the MMDiT under model.diffusion_model., Pile-T5
    under text_encoders.pile_t5xl.transformer., the VAE under vae.; nothing else is looked for."""
    pipe = fresh(KEY)
    tensors = {**auraflow_to_original(pipe.transformer.state_dict(), PREFIX),
               **t5_to_ldm(pipe.text_encoder.state_dict(), "text_encoders.pile_t5xl.transformer."),
               **{"vae." + k: v for k, v in _vae(pipe).items()}}
    path = _models(tmp_path, tensors, te=None, vae={}, folder="checkpoints", name="aura_flow_tiny.safetensors")
    loaded = load_single_file(path, torch.float32, CPU)
    for name in ("transformer", "text_encoder", "vae"):
        want = getattr(pipe, name).state_dict()
        assert all(torch.equal(v, want[k]) for k, v in getattr(loaded, name).state_dict().items()), name
    assert torch.equal(render(loaded), render(pipe))


@pytest.mark.parametrize("fmt,prefix", [("scaled", ""), ("comfy_quant", ""), ("plain", ""),
                                        ("comfy_quant", PREFIX)])
def test_fp8_split_files_keep_fp8_weights_through_its_name_table(fmt, prefix, tmp_path):
    """An AuraFlow MMDiT in ComfyUI's fp8 layouts (every block Linear in fp8) with a Pile-T5 encoder in the same
    layout: every fp8 layer stays fp8 on the diffusers Linear AuraFlow's table names, with exactly the dequantized
    weight; the encoder's fp8 weights stay fp8 too (its own names); (scaled) a LoRA on top equals it on the
    dequantized weights. Bare or under ``model.diffusion_model.``."""
    from lora_fixtures import save_family_lora

    source = fresh(KEY)
    denoiser = _scaled_fp8(auraflow_to_original(source.transformer.state_dict(), prefix),
                           tuple(prefix + b for b in BLOCKS) + (prefix + "modF.",), fmt)
    te_sd = t5_to_ldm(source.text_encoder.state_dict(), "")
    bias = {k: v for k, v in te_sd.items() if "relative_attention_bias" in k}  # embeddings: ComfyUI keeps them dense
    encoder = {**_scaled_fp8({k: v for k, v in te_sd.items() if k not in bias}, ("encoder.block.",), fmt), **bias}
    pipe = load_single_file(_models(tmp_path, denoiser, te=encoder), torch.float32, CPU)
    layers = {k.removeprefix(prefix): v for k, v in _fp8_layers(denoiser).items()}
    kept = _placed(KEY, pipe.transformer, layers)
    assert len(kept) == len(layers) == 1 * 16 + 2 * 8 + 1  # joint blocks, single blocks, modF (swapped halves)
    assert set(kept.values()) == {"fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"}
    te = dict(pipe.text_encoder.named_modules())
    encoder_layers = _fp8_layers(encoder)
    assert len(encoder_layers) == len(quantized_layers(pipe.text_encoder)) == 2 * 7  # q k v o wi_0 wi_1 wo
    for layer, dense in encoder_layers.items():
        assert torch.equal(te[layer].weight, dense), layer
    if fmt == "scaled":
        lora = save_family_lora(KEY, str(tmp_path / "auraflow-lora.safetensors"), seed=2)
        lora_exact(pipe, lora, render, r"keeps its weight quantized")


@pytest.mark.parametrize("name", ["auraflow_tiny_fp8_e4m3fn_mixed.safetensors",
                                  "auraflow_tiny_fp8_e4m3fn_scaled.safetensors"])
def test_comfyuis_own_fp8_files_equal_comfyuis_dequantization(name, tmp_path):
    """fp8 files quantized by ComfyUI's own code (comfy_quant layers, and the same data as legacy scaled_fp8): every
    block Linear stays fp8 on the Linear the table names, holding exactly the float32 weight ComfyUI 0.8.0's load path
    computes with (make_auraflow_fixtures.py --fp8)."""
    pipe = load_single_file(_models(tmp_path, name), torch.float32, CPU)
    reference = load_file(fixture("auraflow_tiny_fp8_e4m3fn.expected.safetensors"))
    kept = _placed(KEY, pipe.transformer, {k.removesuffix(".weight"): v for k, v in reference.items()})
    assert len(kept) == len(reference) == 1 * 16 + 2 * 8 and set(kept.values()) == {"fp8 e4m3fn scaled"}


@pytest.mark.parametrize("name", ["auraflow_tiny-Q8_0.gguf", "auraflow_tiny-Q4_0.gguf"])
def test_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    from lora_fixtures import save_family_lora

    kind = name.split("-")[1].split(".")[0]
    pipe = load_single_file(_models(tmp_path, name), torch.float32, CPU)
    reference = load_file(fixture(name.replace(".gguf", ".expected.safetensors")))
    layers = {k.removesuffix(".weight"): v for k, v in reference.items()}
    kept = _placed(KEY, pipe.transformer, layers)
    assert len(kept) == len(layers) == 1 * 16 + 2 * 8  # lcpp.patch keeps modF, t_embedder, the embedders dense
    assert set(kept.values()) == {f"GGUF {kind}"}
    lora = save_family_lora(KEY, str(tmp_path / "auraflow-lora.safetensors"), seed=2)
    lora_exact(pipe, lora, render, r"keeps its weight quantized \(GGUF .*nothing was fused")


def _variant(seed: int, **config):
    """The tiny pipeline with another AuraFlow transformer (random weights, modulation scaled as tiny.py does)."""
    from diffusers import AuraFlowTransformer2DModel

    from loradeck.core.families.auraflow import tiny

    variant = fresh(KEY)
    torch.manual_seed(seed)
    variant.transformer = AuraFlowTransformer2DModel(**{**dict(variant.transformer.config), **config}).eval()
    with torch.no_grad():
        for name, module in variant.transformer.named_modules():
            if name.endswith(tiny.MODULATION):
                module.weight.mul_(tiny.MODULATION_GAIN)
    return variant


def test_an_auraflow_of_other_depth_loads_from_files_alone(tmp_path):
    """2 double + 1 single layers and a 20 x 20 position grid: read off the weights, as ComfyUI's detection does."""
    variant = _variant(3, num_mmdit_layers=2, num_single_dit_layers=1, pos_embed_max_size=400)
    pipe = load_single_file(_models(tmp_path, auraflow_to_original(variant.transformer.state_dict())), torch.float32,
                            CPU)
    got = pipe.transformer.config
    assert (got.num_mmdit_layers, got.num_single_dit_layers, got.pos_embed_max_size) == (2, 1, 400)
    want = variant.transformer.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in pipe.transformer.state_dict().items())
    assert (render(pipe) - render(variant)).abs().max() <= 2 / 255


def test_another_width_needs_its_heads_from_a_config_folder(tmp_path):
    """A 48-wide MMDiT: the weights cannot tell 3 heads x 16 from 2 x 24 (the q/k norms hold no weights); refused
    naming that, then loaded with its diffusers folder in config_folders."""
    variant = _variant(4, num_attention_heads=3, caption_projection_dim=48)
    path = _models(tmp_path, auraflow_to_original(variant.transformer.state_dict()))
    message = load_error(path)
    assert "its blocks are 48 wide (the denoiser's cond_seq_linear.weight [48, 32])" in message
    assert "num_attention_heads 2 (the shipped tiny AuraFlow (built-in) config)" in message
    assert "the weights cannot tell the heads" in message
    folder = str(tmp_path / "diffusers" / "auraflow-48")
    variant.save_pretrained(folder)
    pipe = load_single_file(path, torch.float32, CPU, config_folders=(folder,))
    assert (pipe.transformer.config.num_attention_heads, pipe.transformer.config.attention_head_dim) == (3, 16)
    want = variant.transformer.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in pipe.transformer.state_dict().items())
    assert (render(pipe) - render(variant)).abs().max() <= 2 / 255


@pytest.mark.parametrize("positions", [9216, 1024])  # v0.3's 96 x 96 grid; v0.1 / v0.2's 32 x 32
def test_a_real_size_auraflow_config_is_derived_from_its_shapes_on_the_meta_device(positions):
    from diffusers import AuraFlowTransformer2DModel

    from loradeck.core.families import SINGLE_FILE_ARCHS
    from loradeck.core.models import configs
    from loradeck.core.models.arch import Header
    from loradeck.core.models.build import meta_component
    from loradeck.core.models.single_file import identify

    with torch.device("meta"):
        model = AuraFlowTransformer2DModel(num_mmdit_layers=4, num_single_dit_layers=32, attention_head_dim=256,
                                           num_attention_heads=12, joint_attention_dim=2048,
                                           caption_projection_dim=3072, pos_embed_max_size=positions)
    shapes = {k: tuple(v.shape) for k, v in auraflow_to_original(model.state_dict()).items()}
    header = Header("/models/diffusion_models/aura_flow_0.3.safetensors", shapes, {}, {}, None)
    arch = identify(header)
    assert arch.key == "auraflow" and arch in SINGLE_FILE_ARCHS
    resolved = configs.resolve(arch, header)
    try:
        config = AuraFlowTransformer2DModel.load_config(resolved.arch.config_dir, subfolder="transformer")
        assert {k: config[k] for k in ("num_mmdit_layers", "num_single_dit_layers", "num_attention_heads",
                                       "attention_head_dim", "joint_attention_dim", "pos_embed_max_size")} == \
            {"num_mmdit_layers": 4, "num_single_dit_layers": 32, "num_attention_heads": 12, "attention_head_dim": 256,
             "joint_attention_dim": 2048, "pos_embed_max_size": positions}
        assert resolved.source("transformer", "num_single_dit_layers") == "the denoiser's 32 single_layers"
        built = meta_component(resolved.arch.config_dir, "transformer")
        assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in model.state_dict().items()}
        text = meta_component(resolved.arch.config_dir, "text_encoder")
        assert text.shared.weight.shape == (32128, 2048) and len(text.encoder.block) == 24
        # ComfyUI's Pile-T5-XL file (T5 names, a relative-attention bias in every block) fits the slot by shapes
        from loradeck.core.models.parts import find_encoders, fits, read_config

        te = Header("/models/text_encoders/pile_t5xl.safetensors",
                    {k: tuple(v.shape) for k, v in t5_to_ldm(text.state_dict(), "").items()}, {}, {}, None)
        (found,) = find_encoders(te)
        assert (found.layout, found.width, found.layers, found.vocab) == ("umt5", 2048, 24, 32128)
        assert fits(found, arch.encoders[0], read_config(resolved.arch, "text_encoder"))
        assert meta_component(resolved.arch.config_dir, "vae").config.latent_channels == 4
    finally:
        resolved.cleanup()


@pytest.mark.parametrize("key,shape,says", [
    ("positional_encoding", (1, 200, 32), "positional_encoding [1, 200, ...] is not a square grid of positions"),
    ("single_layers.0.mlp.c_fc1.weight", (128, 32), "is not the feed-forward width 256 a 32-wide AuraFlow has"),
    ("init_x_linear.weight", (32, 18), "are not 2 x 2 patches of latent channels"),
])
def test_shapes_no_auraflow_config_can_take_are_refused_naming_the_file(key, shape, says, tmp_path):
    tensors = load_file(fixture(DENOISER))
    tensors[key] = torch.zeros(shape, dtype=torch.bfloat16)
    path = _models(tmp_path, tensors, name="lying.safetensors")
    with pytest.raises(PipelineLoadError, match=r"'lying.safetensors' is a tiny AuraFlow \(built-in\) checkpoint, "
                                                r"but .*" + re.escape(says)):
        load_single_file(path, torch.float32, CPU)


def test_missing_parts_are_named_in_one_sentence_each(tmp_path):
    path = _models(tmp_path, DENOISER, te=None, vae={})
    message = load_error(path)
    assert "'auraflow_tiny_bf16.safetensors' is a tiny AuraFlow (built-in) checkpoint" in message
    assert "Pile-T5-XL text encoder (AuraFlow's UMT5) (text_encoder: width 32, 2 layers; d_model from the " \
           "denoiser's cond_seq_linear.weight [32, 32]" in message
    assert "put the Pile-T5-XL text encoder" in message
    assert "a VAE (4 latent channels; latent_channels from the denoiser's init_x_linear.weight [32, 16]: 2 x 2 " \
           "patches), which is not in the file: put the SDXL VAE (sdxl_vae.safetensors) in models/vae" in message


def test_the_sdxl_vae_wins_over_an_sd15_vae_of_the_same_shapes(tmp_path):
    """SD 1.5's VAE has the SDXL VAE's shapes: the file named for SDXL is taken, whatever the name order."""
    pipe = fresh(KEY)
    path = _models(tmp_path, DENOISER)
    other = _vae(pipe)
    other = {k: (v + 1 if k.endswith("conv_in.weight") else v) for k, v in other.items()}
    from single_file_fixtures import save

    save(other, str(tmp_path / "models" / "vae" / "a_vae-ft-mse-840000.safetensors"))
    loaded = load_single_file(path, torch.float32, CPU)
    want = pipe.vae.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in loaded.vae.state_dict().items())


def test_an_encoder_of_another_model_is_not_taken_for_pile_t5(tmp_path):
    """Wan's UMT5 layout with other shapes is no Pile-T5; the file is named as found."""
    pipe = fresh(KEY)
    other = t5_to_ldm(pipe.text_encoder.state_dict(), "")
    other["shared.weight"] = torch.zeros(64, 32)  # another vocabulary
    path = _models(tmp_path, DENOISER, te=other)
    with pytest.raises(PipelineLoadError, match=r"found there: pile_t5xl_bf16.safetensors: UMT5 encoder "
                                                r"\(width 32, 2 layers\)"):
        load_single_file(path, torch.float32, CPU)


# --- the Pile-T5 tokenizer: ComfyUI's bundled sentencepiece model, or a diffusers AuraFlow folder's ---

def _llama_spm(path: str, pieces: int = 32000) -> None:
    """A sentencepiece BPE model shaped as Llama 2's / Pile-T5's (<unk> <s> </s>, byte fallback, ``pieces`` pieces)."""
    from transformers.convert_slow_tokenizer import import_protobuf

    model = import_protobuf().ModelProto()
    model.trainer_spec.model_type, model.trainer_spec.byte_fallback = 2, True
    model.normalizer_spec.add_dummy_prefix = True
    for piece, kind in (("<unk>", 2), ("<s>", 3), ("</s>", 3)):
        model.pieces.add(piece=piece, score=0.0, type=kind)
    for i in range(256):
        model.pieces.add(piece=f"<0x{i:02X}>", score=0.0, type=6)
    words = ["▁", "a", "c", "t", "▁a", "▁c", "at", "▁cat"]
    for i, word in enumerate(words):
        model.pieces.add(piece=word, score=-float(i), type=1)
    for i in range(pieces - len(model.pieces)):
        model.pieces.add(piece=f"x{i}", score=-1000.0 - i, type=1)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def test_comfyuis_t5_pile_tokenizer_folder_is_found_and_encodes_as_comfyui(tmp_path):
    from loradeck.core.models import tokenizers as tokenizer_files

    comfy = tmp_path / "ComfyUI"
    folder = comfy / "comfy" / "text_encoders" / "t5_pile_tokenizer"
    os.makedirs(folder)
    _llama_spm(str(folder / "tokenizer.model"))
    other = tmp_path / "other"  # a sentencepiece model of another vocabulary is not taken for it
    os.makedirs(other)
    _llama_spm(str(other / "tokenizer.model"), pieces=400)
    assert tokenizer_files.kind_of(str(other)) is None
    assert tokenizer_files.find("pile_t5", [str(other), str(comfy)]) == str(folder)
    tokenizer = tokenizer_files.load("pile_t5", str(folder), None)
    ids = tokenizer("a cat", padding="max_length", max_length=6)
    assert ids.input_ids == [tokenizer.convert_tokens_to_ids("▁a"), tokenizer.convert_tokens_to_ids("▁cat"), 2, 1, 1,
                             1]  # no BOS, EOS, padded with id 1 at the end (ComfyUI's PT5XlTokenizer)
    assert ids.attention_mask == [1, 1, 1, 0, 0, 0]


def test_a_diffusers_auraflow_folders_tokenizer_is_found_by_its_pipeline_class(tmp_path):
    """A diffusers AuraFlow folder's tokenizer/ (LlamaTokenizerFast's files) serves; the same files in a folder of
    another pipeline (HunyuanVideo's Llama tokenizer has the same class) do not."""
    import json

    from loradeck.core.models import tokenizers as tokenizer_files

    source = tmp_path / "spm"
    os.makedirs(source)
    _llama_spm(str(source / "tokenizer.model"))
    tokenizer = tokenizer_files.load("pile_t5", str(source), None)
    for name, cls in (("other", "HunyuanVideoPipeline"), ("AuraFlow-v0.3", "AuraFlowPipeline")):
        tokenizer.save_pretrained(str(tmp_path / name / "tokenizer"))
        (tmp_path / name / "model_index.json").write_text(json.dumps({"_class_name": cls}))
    assert tokenizer_files.find("pile_t5", [str(tmp_path / "other")]) is None
    folder = tokenizer_files.find("pile_t5", [str(tmp_path / "other"), str(tmp_path / "AuraFlow-v0.3")])
    assert folder == str(tmp_path / "AuraFlow-v0.3" / "tokenizer")
    loaded = tokenizer_files.load("pile_t5", folder, None)
    assert loaded("a cat", padding="max_length", max_length=6).input_ids == \
        tokenizer("a cat", padding="max_length", max_length=6).input_ids


@pytest.mark.skipif(not os.environ.get("COMFYUI_ROOT"), reason="set COMFYUI_ROOT to a ComfyUI checkout")
def test_comfyuis_bundled_pile_t5_tokenizer_gives_sentencepieces_ids():
    """ids sentencepiece (ComfyUI's SPieceTokenizer, add_eos) gives for these prompts (ComfyUI 0.8.0's
    t5_pile_tokenizer/tokenizer.model)."""
    from loradeck.core.models import tokenizers as tokenizer_files

    folder = tokenizer_files.find("pile_t5", [os.environ["COMFYUI_ROOT"]])
    tokenizer = tokenizer_files.load("pile_t5", folder, None)
    for text, ids in (("a photo of a cat, Hello world! 123 ünïcode 猫",
                       [263, 15373, 310, 263, 6635, 29892, 15043, 3186, 29991, 29871, 29896, 29906, 29941, 2505, 29876,
                        30085, 401, 29871, 234, 143, 174, 2]),
                      ("close-up portrait of a majestic iguana with vibrant blue-green scales", None)):
        got = tokenizer(text).input_ids
        assert got[-1] == 2 and 1 not in got
        if ids is not None:
            assert got == ids
