"""HiDream-I1's split files as ComfyUI users keep them: ``hidream_i1_*.safetensors`` / ``.gguf`` in diffusion_models/,
``clip_l_hidream``, ``clip_g_hidream``, ``t5xxl_*`` and ``llama_3.1_8b_instruct_*`` in text_encoders/, FLUX.1's
``ae.safetensors`` in vae/.

The fixtures (tools/fixtures/generators/model_files/make_hidream_fixtures.py) are LoRA Deck's tiny HiDream as
ComfyUI's own modules hold it (its transformer, CLIPs, T5 and Llama: strict loads, their state dicts saved) and
ComfyUI-GGUF's convert.py (arch ``hidream``) + gguf-py's quantizer; each must load back to the tiny pipeline's weights
(GGUF: gguf-py's dequantization, recorded as sha256 of the float32 values) and give the diffusers folder's images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import pytest
import torch
from model_file_fixtures import bits_equal, fixture, load_error, lora_exact, node_loads, place_models, quantized_layers
from safetensors.torch import load_file
from test_model_files import _fp8_layers, _scaled_fp8

from family_fixtures import DENOISER_TARGETS, PARAMS, fresh
from family_fixtures import render as render_with
from loradeck.core import Deck
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import load_single_file
from original_layout import clip_to_ldm, t5_to_ldm, vae_to_ldm

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)
KEY = "hidream"
DENOISER = "hidream_tiny_bf16.safetensors"
# fixture -> the name ComfyUI users give it, in its folder
PARTS = {"hidream_tiny_clip_l_bf16.safetensors": ("text_encoders", "clip_l_hidream.safetensors"),
         "hidream_tiny_clip_g_bf16.safetensors": ("text_encoders", "clip_g_hidream.safetensors"),
         "hidream_tiny_t5_bf16.safetensors": ("text_encoders", "t5xxl_fp16.safetensors"),
         "hidream_tiny_llama_bf16.safetensors": ("text_encoders", "llama_3.1_8b_instruct_bf16.safetensors"),
         "hidream_tiny_vae_bf16.safetensors": ("vae", "ae.safetensors")}
GATES = ("double_stream_blocks.0.block.ff_i.gate", "single_stream_blocks.0.block.ff_i.gate")
# every Linear of the tiny transformer's blocks: per double block 8 attention + 2 x 3 (shared, ff_t) + 4 x 3 experts +
# the modulation = 27; per single block 4 + 3 + 12 + 1 = 20
BLOCK_LINEARS = 47


def render(pipe) -> torch.Tensor:
    from loradeck.core.families.hidream.tiny import SAMPLE_SIZE

    pipe.default_sample_size = SAMPLE_SIZE  # a pipeline attribute, not a config value: the tiny built-in's size
    return render_with(KEY, pipe, FAST)


def llama_to_comfy(sd: dict) -> dict:
    """LlamaForCausalLM keys as ComfyUI's ``llama_3.1_8b_instruct_*.safetensors`` hold them: ``model.*``, no lm_head."""
    return {k: v for k, v in sd.items() if k.startswith("model.")}


def comfy_layouts(pipe) -> dict[str, dict]:
    """Each fixture's tensors as this file's converters write them from a pipeline."""
    return {DENOISER: pipe.transformer.state_dict(),
            "hidream_tiny_clip_l_bf16.safetensors": clip_to_ldm(pipe.text_encoder.state_dict(), ""),
            "hidream_tiny_clip_g_bf16.safetensors": clip_to_ldm(pipe.text_encoder_2.state_dict(), ""),
            "hidream_tiny_t5_bf16.safetensors": t5_to_ldm(pipe.text_encoder_3.state_dict(), ""),
            "hidream_tiny_llama_bf16.safetensors": llama_to_comfy(pipe.text_encoder_4.state_dict()),
            "hidream_tiny_vae_bf16.safetensors": vae_to_ldm(pipe.vae.state_dict(), prefix="")}


def _models(tmp_path, denoiser: str | dict, parts: dict | None = None, skip=()) -> str:
    """``tmp_path/models`` with the denoiser (a fixture name, or tensors) in diffusion_models/ and the other parts
    (fixtures, or ``parts``: {fixture: tensors}) in text_encoders/ and vae/ under ComfyUI's names, but ``skip``.
    Returns the denoiser's path."""
    return place_models(tmp_path, [(folder, None if name in skip else (parts or {}).get(name, name), target)
                                   for name, (folder, target) in PARTS.items()]
                        + [("diffusion_models", denoiser, "hidream_i1_tiny.safetensors")])


def _same(model, want: dict, skip=()) -> bool:
    return all(torch.equal(v, want[k]) for k, v in model.state_dict().items() if k not in skip)


@pytest.fixture
def lora_on_experts(monkeypatch):
    """LoRAs of this file train the routed and shared experts too (w1 / w3 of every expert, ff_t)."""
    monkeypatch.setitem(DENOISER_TARGETS, KEY, [*DENOISER_TARGETS[KEY], "w1", "w3"])


def test_comfyuis_files_hold_the_tiny_hidream_in_its_layouts():
    """The fixtures ComfyUI's own modules wrote are the built-in tiny HiDream (bf16) in ComfyUI's layouts, which are
    what this file's converters write (so the tests below that build files with them test ComfyUI's layout)."""
    for name, want in comfy_layouts(fresh(KEY)).items():
        stored = load_file(fixture(name))
        want = {k: v for k, v in want.items() if not k.endswith("position_ids")}
        assert stored.keys() == want.keys(), name
        assert all(bits_equal(v, want[k].to(torch.bfloat16)) for k, v in stored.items()), name


def test_bf16_split_files_give_the_diffusers_folders_images(tmp_path, use_models):
    """Load Diffusion Model lists ComfyUI's bf16 denoiser file and loads it with the four text encoders and the
    FLUX.1-layout VAE found beside it by keys and shapes: every weight the diffusers folder's, the same images."""

    pipe = fresh(KEY)
    for name in ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "text_encoder_4", "vae"):
        getattr(pipe, name).to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / KEY)
    pipe.save_pretrained(folder)
    _models(tmp_path, DENOISER)
    loaded = node_loads(use_models, str(tmp_path / "models"), DENOISER)
    assert type(loaded).__name__ == "HiDreamImagePipeline"
    for name in ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "vae"):
        assert _same(getattr(loaded, name), getattr(pipe, name).state_dict()), name
    # ComfyUI's Llama file has no LM head (the pipeline reads hidden states only): the embedding stands in
    assert _same(loaded.text_encoder_4, pipe.text_encoder_4.state_dict(), skip=("lm_head.weight",))
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe
    assert (render(loaded) - render(reference)).abs().max() <= 2 / 255


@pytest.mark.usefixtures("lora_on_experts")
@pytest.mark.parametrize("fmt,prefix", [("scaled", ""), ("comfy_quant", ""), ("plain", ""),
                                        ("scaled", "model.diffusion_model.")])
def test_fp8_split_files_keep_fp8_weights_on_their_own_linears(fmt, prefix, tmp_path):
    """A HiDream denoiser in ComfyUI's fp8 layouts (legacy scaled_fp8, per-layer comfy_quant, plain) with the Llama
    and T5 in the same layout: every fp8 block Linear (attention, modulation, the shared and routed experts) stays
    fp8 on the Linear of its own name with exactly the dequantized rows; the MoE routers (plain parameters, no
    Linear) and the Llama's weights are dequantized at load, exactly; (scaled) a LoRA on the experts and attention
    equals it on the dequantized weights, and fusing into them is refused."""
    from lora_fixtures import save_family_lora

    source = fresh(KEY)
    denoiser = _scaled_fp8({prefix + k: v for k, v in source.transformer.state_dict().items()},
                           (prefix + "double_stream_blocks.", prefix + "single_stream_blocks."), fmt)
    llama = _scaled_fp8(llama_to_comfy(source.text_encoder_4.state_dict()), ("model.layers.",), fmt)
    t5 = _scaled_fp8(t5_to_ldm(source.text_encoder_3.state_dict(), ""), ("encoder.block.",), fmt)
    pipe = load_single_file(_models(tmp_path, denoiser, {"hidream_tiny_llama_bf16.safetensors": llama,
                                                         "hidream_tiny_t5_bf16.safetensors": t5}), torch.float32, CPU)
    layers = {k.removeprefix(prefix): v for k, v in _fp8_layers(denoiser).items()}
    kept = quantized_layers(pipe.transformer)
    assert set(kept) == set(layers) - set(GATES) and len(kept) == BLOCK_LINEARS
    assert set(kept.values()) == {"fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"}
    assert all(torch.equal(pipe.transformer.get_submodule(k).weight, v) for k, v in layers.items() if k not in GATES)
    for gate in GATES:  # the routers: dequantized at load, to the same values
        assert torch.equal(pipe.transformer.get_submodule(gate).weight, layers[gate])
    llama_layers = _fp8_layers(llama)
    assert len(llama_layers) == 14 and not quantized_layers(pipe.text_encoder_4)
    for layer, dense in llama_layers.items():
        assert torch.equal(pipe.text_encoder_4.get_submodule(layer).weight, dense), layer
    if fmt == "scaled":
        lora = save_family_lora(KEY, str(tmp_path / "hidream-lora.safetensors"), seed=2)
        lora_exact(pipe, lora, render, r"keeps its weight quantized \(fp8 .*nothing was fused")


def _sha256(weight: torch.Tensor) -> str:
    return hashlib.sha256(weight.float().contiguous().numpy().tobytes()).hexdigest()


FP8 = "hidream_tiny_fp8_e4m3fn_mixed.safetensors"


def _legacy(stored: dict) -> dict:
    """ComfyUI's comfy_quant layout as its pre-0.8 scaled_fp8 layout (the inverse of comfy/utils.py
    convert_old_quants, as make_fp8_fixtures.py's to_legacy writes it)."""
    out = {k.removesuffix(".weight_scale") + ".scale_weight" if k.endswith(".weight_scale") else k: v
           for k, v in stored.items() if not k.endswith(".comfy_quant")}
    return {**out, "scaled_fp8": torch.tensor([], dtype=torch.float8_e4m3fn)}


@pytest.mark.parametrize("layout", ["comfy_quant", "scaled_fp8"])
def test_comfyuis_own_fp8_file_keeps_comfyuis_own_weights(layout, tmp_path):
    """The fp8 file ComfyUI's own quantizer wrote (every block Linear; the routers, plain parameters in ComfyUI's
    model too, left bf16), in its comfy_quant layout and in the legacy scaled_fp8 one: every layer stays fp8 on the
    Linear of its name and computes with exactly the weight ComfyUI 0.8.0 computes with (cast_bias_weight, float32;
    recorded as sha256 by make_hidream_fp8_fixtures.py)."""
    stored = load_file(fixture(FP8))
    pipe = load_single_file(_models(tmp_path, _legacy(stored) if layout == "scaled_fp8" else stored), torch.float32,
                            CPU)
    with open(fixture(FP8.replace(".safetensors", ".expected.json")), encoding="utf-8") as f:
        expected = json.load(f)["layers"]
    kept = quantized_layers(pipe.transformer)
    assert set(kept) == set(expected) and len(kept) == BLOCK_LINEARS and set(kept.values()) == {"fp8 e4m3fn scaled"}
    assert all(_sha256(pipe.transformer.get_submodule(k).weight) == v for k, v in expected.items())


@pytest.mark.usefixtures("lora_on_experts")
@pytest.mark.parametrize("name", ["hidream_tiny-Q8_0.gguf", "hidream_tiny-Q4_0.gguf"])
def test_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    """ComfyUI-GGUF files of the tiny HiDream (arch hidream) alone in diffusion_models/: every quantized tensor (the
    routed experts' w2 in Q4_1 in the Q4_0 file, as lcpp.patch makes them) stays quantized on the Linear of its name
    with exactly gguf-py's dequantization; the routers stay F32 as convert.py keeps them; a LoRA on top equals it on
    the dequantized weights (unfused), and fusing is refused with the reason."""
    from lora_fixtures import save_family_lora

    kind = name.split("-")[1].split(".")[0]
    pipe = load_single_file(_models(tmp_path, name), torch.float32, CPU)
    with open(fixture(name.replace(".gguf", ".expected.json")), encoding="utf-8") as f:
        reference = {k.removesuffix(".weight"): v for k, v in json.load(f)["tensors"].items()}
    kept = quantized_layers(pipe.transformer)
    assert set(kept) == set(reference) and len(kept) == BLOCK_LINEARS
    assert set(kept.values()) == ({"GGUF Q8_0"} if kind == "Q8_0" else {"GGUF Q4_0", "GGUF Q4_1"})
    assert {k for k, v in kept.items() if v == "GGUF Q4_1"} <= {k for k in kept if k.endswith(".w2")}
    for layer, want in reference.items():
        weight = pipe.transformer.get_submodule(layer).weight
        assert list(weight.shape) == want["shape"] and _sha256(weight) == want["sha256"], layer
    source = fresh(KEY).transformer.state_dict()
    for gate in GATES:
        assert torch.equal(pipe.transformer.get_submodule(gate).weight, source[gate + ".weight"].to(torch.bfloat16)
                           .float())
    lora = save_family_lora(KEY, str(tmp_path / "hidream-lora.safetensors"), seed=2)
    lora_exact(pipe, lora, render, r"keeps its weight quantized \(GGUF .*nothing was fused")


def _variant(seed: int, **sizes):
    """The tiny pipeline with a transformer of other sizes (the tiny's otherwise)."""
    from diffusers import HiDreamImageTransformer2DModel

    from loradeck.core.models.tiny_parts import awaken

    pipe = fresh(KEY)
    config = {**dict(pipe.transformer.config), **sizes}
    torch.manual_seed(seed)
    pipe.transformer = awaken(HiDreamImageTransformer2DModel.from_config(config).eval(), seed=seed)
    return pipe


def test_a_hidream_of_other_width_and_experts_loads_from_files_alone(tmp_path):
    """6 heads (48 wide) and 3 routed experts: the config is read off the weights; the images are the variant's."""
    variant = _variant(3, num_attention_heads=6, num_routed_experts=3)
    path = _models(tmp_path, variant.transformer.state_dict())
    pipe = load_single_file(path, torch.float32, CPU)
    config = pipe.transformer.config
    assert (config.num_attention_heads, config.attention_head_dim, config.num_routed_experts) == (6, 8, 3)
    assert _same(pipe.transformer, variant.transformer.state_dict())
    assert (render(pipe) - render(variant)).abs().max() <= 2 / 255


def test_what_the_shapes_cannot_tell_comes_from_a_config_folder(tmp_path):
    """2 double + 2 single blocks: which Llama layer each block reads is in no weight; the tiny config's
    llama_layers names 2 for 4 blocks. The error names the value and where it came from; a diffusers folder of the
    model gives it (and, as a Dev folder would, its scheduler's shift)."""
    variant = _variant(4, num_layers=2, num_single_layers=2, llama_layers=(0, 1, 1, 1))
    path = _models(tmp_path, variant.transformer.state_dict())
    message = load_error(path)
    assert "is a tiny HiDream (built-in) checkpoint" in message
    assert ("its 4 blocks (the denoiser's 2 double_stream_blocks, the denoiser's 2 single_stream_blocks) each read "
            "one of the 2 Llama layers, but llama_layers [0, 1] (the shipped tiny HiDream (built-in) config) does "
            "not name one per block") in message
    variant.scheduler = type(variant.scheduler).from_config(variant.scheduler.config, shift=6.0)  # HiDream-I1-Dev's
    folder = str(tmp_path / "diffusers" / "deeper")
    variant.save_pretrained(folder)
    loaded = load_single_file(path, torch.float32, CPU, config_folders=(folder,))
    assert list(loaded.transformer.config.llama_layers) == [0, 1, 1, 1] and loaded.scheduler.config.shift == 6.0
    assert _same(loaded.transformer, variant.transformer.state_dict())
    assert (render(loaded) - render(variant)).abs().max() <= 2 / 255


def _meta_shapes(**config) -> dict:
    from diffusers import HiDreamImageTransformer2DModel

    real = {"patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 16, "num_single_layers": 32,
            "attention_head_dim": 128, "num_attention_heads": 20, "caption_channels": [4096, 4096],
            "text_emb_dim": 2048, "num_routed_experts": 4, "num_activated_experts": 2, "axes_dims_rope": (64, 32, 32),
            "max_resolution": (128, 128), "llama_layers": [*range(32), *[31] * 16]}
    with torch.device("meta"):
        model = HiDreamImageTransformer2DModel(**{**real, **config})
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("heads", [20, 16])
def test_a_real_size_hidream_config_is_derived_from_its_shapes_on_the_meta_device(heads):
    """HiDream-I1 (16 + 32 blocks, 20 heads of 128: ComfyUI's detect_unet_config values) and a narrower variant:
    shapes only (meta tensors, no memory). Its encoders are Long-CLIP L / G (248 positions), T5-XXL and Llama 3.1 8B;
    its scheduler FlowMatch Euler with shift 3.0 (Full's and Fast's; ComfyUI's HiDream default)."""
    from diffusers import HiDreamImageTransformer2DModel
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    from loradeck.core.families import SINGLE_FILE_ARCHS
    from loradeck.core.models import configs
    from loradeck.core.models.arch import Header
    from loradeck.core.models.build import meta_component
    from loradeck.core.models.single_file import identify

    shapes = _meta_shapes(num_attention_heads=heads)
    header = Header("/models/diffusion_models/hidream_i1_full_bf16.safetensors", shapes, {}, {}, None)
    arch = identify(header)
    assert arch.key == "hidream-i1" and arch in SINGLE_FILE_ARCHS
    resolved = configs.resolve(arch, header)
    try:
        config = HiDreamImageTransformer2DModel.load_config(resolved.arch.config_dir, subfolder="transformer")
        assert (config["num_layers"], config["num_single_layers"], config["num_attention_heads"],
                config["attention_head_dim"], config["caption_channels"], config["text_emb_dim"]) == \
            (16, 32, heads, 128, [4096, 4096], 2048)
        assert resolved.source("transformer", "num_attention_heads") == \
            f"the denoiser's x_embedder.proj.weight [{heads * 128}, 64] / head width 128"
        built = meta_component(resolved.arch.config_dir, "transformer")
        assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == shapes
        assert infer_diffusers_model_type(built.state_dict()) == "hidream"  # diffusers' own detection agrees
        clip_l, clip_g = (meta_component(resolved.arch.config_dir, c) for c in ("text_encoder", "text_encoder_2"))
        assert clip_l.text_model.embeddings.position_embedding.weight.shape == (248, 768)
        assert clip_g.text_model.embeddings.position_embedding.weight.shape == (248, 1280)
        assert meta_component(resolved.arch.config_dir, "text_encoder_3").shared.weight.shape == (32128, 4096)
        llama = meta_component(resolved.arch.config_dir, "text_encoder_4")
        assert llama.model.embed_tokens.weight.shape == (128256, 4096) and len(llama.model.layers) == 32
        assert meta_component(resolved.arch.config_dir, "vae").decoder.conv_in.weight.shape[:2] == (512, 16)
        with open(os.path.join(resolved.arch.config_dir, "scheduler", "scheduler_config.json"), encoding="utf-8") as f:
            scheduler = json.load(f)
        assert (scheduler["_class_name"], scheduler["shift"], scheduler["use_dynamic_shifting"]) == \
            ("FlowMatchEulerDiscreteScheduler", 3.0, False)
    finally:
        resolved.cleanup()


def test_missing_parts_are_named_in_one_sentence_each(tmp_path):
    path = _models(tmp_path, DENOISER, skip=tuple(PARTS))
    message = load_error(path)
    assert "'hidream_tiny_bf16.safetensors' is a tiny HiDream (built-in) checkpoint" in message
    for what, file in (("Long-CLIP-L text encoder (248 positions) (text_encoder: width 32", "clip_l_hidream"),
                       ("Long-CLIP-G text encoder (248 positions) (text_encoder_2: width 16", "clip_g_hidream"),
                       ("T5-XXL text encoder (text_encoder_3: width 32, 2 layers; d_model from the denoiser's "
                        "caption_projection.2.linear.weight [32, 32]", "t5xxl_fp16"),
                       ("Llama 3.1 8B text encoder (text_encoder_4: width 16, 2 layers; hidden_size from the "
                        "denoiser's caption_projection.0.linear.weight [32, 16]", "llama_3.1_8b_instruct")):
        assert f"it needs the {what}" in message and f"put {file}" in message, what
    assert "a VAE (4 latent channels; latent_channels from the denoiser's x_embedder.proj.weight [32, 16]: 2 x 2 " \
        "patches), which is not in the file: put ae.safetensors (the FLUX.1 VAE) in models/vae" in message


def test_a_77_position_clip_is_not_taken_for_hidreams_long_clip(tmp_path):
    """ComfyUI's plain clip_l (77 positions) beside HiDream's files: HiDream's pipeline gives its CLIPs 128 tokens,
    which only the Long-CLIP files take; the short one is not used, and is named among what was found."""
    short = clip_to_ldm(fresh(KEY).text_encoder.state_dict(), "")
    short["text_model.embeddings.position_embedding.weight"] = \
        short["text_model.embeddings.position_embedding.weight"][:77]
    path = _models(tmp_path, DENOISER, {"hidream_tiny_clip_l_bf16.safetensors": short})
    message = load_error(path)
    assert "it needs the Long-CLIP-L text encoder (248 positions) (text_encoder" in message
    assert "clip_l_hidream.safetensors: CLIP text encoder (width 32, 2 layers)" in message  # the short one, found


def _llama3_tokenizer_folder(root: str) -> str:
    """A folder laid out as ComfyUI's comfy/text_encoders/llama_tokenizer: its tokenizer_config.json (LlamaTokenizer),
    a tokenizer.json with Llama 3's special tokens (the tiny byte-level vocab)."""
    from loradeck.core.families.hidream.tiny import tiny_llama_tokenizer

    folder = os.path.join(root, "comfy", "text_encoders", "llama_tokenizer")
    os.makedirs(folder)
    tiny_llama_tokenizer().backend_tokenizer.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<|begin_of_text|>",
                   "eos_token": "<|end_of_text|>", "add_bos_token": True}, f)
    return folder


def test_the_llama_tokenizer_is_found_in_comfyuis_folder_and_pads_with_eot(tmp_path):
    """Llama 3's tokenizer (tokenizer.json) is found where ComfyUI keeps it, by its files and special tokens, ending
    and padding with <|eot_id|> as Llama 3.1 Instruct and ComfyUI's HiDream tokenizer (pad 128009) do; a Llama 2
    folder (tokenizer.model, no Llama 3 tokens) is not taken for it."""
    from loradeck.core.models import tokenizers

    folder = _llama3_tokenizer_folder(str(tmp_path / "ComfyUI"))
    assert tokenizers.kind_of(folder) == "llama"
    found, missing = tokenizers.resolve({"text_encoder_4": "llama31_8b"}, [str(tmp_path / "ComfyUI")], builtin=False)
    assert not missing
    tok = found["tokenizer_4"]
    assert tok.eos_token == tok.pad_token == "<|eot_id|>"
    assert tok("ab").input_ids[0] == tok.convert_tokens_to_ids("<|begin_of_text|>")
    other = tmp_path / "llama2"
    other.mkdir()
    (other / "tokenizer.json").write_text('{"added_tokens": [{"content": "<s>"}]}')
    (other / "tokenizer_config.json").write_text('{"tokenizer_class": "LlamaTokenizer"}')
    assert tokenizers.kind_of(str(other)) is None
    found, missing = tokenizers.resolve({"text_encoder_4": "llama31_8b"}, [str(other)], builtin=False)
    assert missing and "Llama 3 tokenizer" in missing[0] and "comfy/text_encoders/llama_tokenizer" in missing[0]


_COMFY_LLAMA = os.path.join(os.environ.get("COMFYUI_ROOT", ""), "comfy", "text_encoders", "llama_tokenizer")


@pytest.mark.skipif(not os.path.isfile(os.path.join(_COMFY_LLAMA, "tokenizer.json")),
                    reason="needs a ComfyUI checkout with its llama_tokenizer/tokenizer.json (COMFYUI_ROOT)")
def test_comfyuis_bundled_llama_tokenizer_serves_hidream():
    """The real file users have: Llama 3's vocab (128000 <|begin_of_text|>, 128009 <|eot_id|>)."""
    from loradeck.core.models import tokenizers

    found, missing = tokenizers.resolve({"text_encoder_4": "llama31_8b"}, [os.environ["COMFYUI_ROOT"]],
                                        builtin=False)
    assert not missing
    tok = found["tokenizer_4"]
    assert tok("a cat").input_ids[0] == 128000 and tok.pad_token_id == 128009
