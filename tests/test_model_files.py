"""The model files ComfyUI users have: a denoiser alone in diffusion_models/ (fp16/bf16, plain fp8, ComfyUI's scaled
fp8 in both its formats, GGUF) with its text encoders and VAE beside it, loaded offline.

References: the quantized fixtures were made by ComfyUI's own quantization and save code, ComfyUI-GGUF's
convert.py and ggml's quantizer, each stored with the reference dequantization (ComfyUI 0.8.0's own load path;
gguf-py's ``gguf.quants.dequantize``): the weights must equal it to the bit. fp16/bf16 files must give the images
of the diffusers folder of the same weights; a LoRA on quantized weights must give exactly what the same LoRA gives
on the dequantized weights, and stay unfused.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest
import torch
from model_file_fixtures import (
    DTYPES,
    MANIFEST,
    WIDE,
    bits_equal,
    dequantized_copy,
    expected,
    fixture,
    models_folder,
    original_weight,
    quantized_layers,
    split_files,
    wide_flux,
)
from safetensors.torch import load_file, save_file

from family_fixtures import PARAMS, fresh
from family_fixtures import render as render_with
from loradeck.core import Deck, FuseError, PipelineLoadError
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import load_single_file

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)
FP8_DENOISERS = {  # fixture -> what each of its quantized Linear layers is kept as
    "flux_tiny_fp8_e4m3fn.safetensors": "fp8 e4m3fn",  # plain: no scales
    "flux_tiny_fp8_e4m3fn_scaled.safetensors": "fp8 e4m3fn scaled",  # legacy scaled_fp8 marker
    "flux_tiny_fp8_e4m3fn_mixed.safetensors": "fp8 e4m3fn scaled",  # per-layer comfy_quant
    "flux_tiny_fp8_e4m3fn_metadata.safetensors": "fp8 e4m3fn scaled",  # _quantization_metadata header
    "flux_tiny_fp8_e5m2_mixed.safetensors": "fp8 e5m2 scaled",
    "flux_tiny_nvfp4_mixed.safetensors": None,  # read, dequantized at load: nothing keeps 4-bit floats
}
T5_FILES = {"t5_tiny_fp8_e4m3fn.safetensors": "fp8 e4m3fn",  # plain, no scales
            "t5_tiny_fp8_e4m3fn_scaled.safetensors": "fp8 e4m3fn scaled",
            "t5_tiny_fp8_e4m3fn_mixed.safetensors": "fp8 e4m3fn scaled"}
GGUF = {"flux_tiny-Q8_0.gguf": {"GGUF Q8_0"}, "flux_tiny-Q4_0.gguf": {"GGUF Q4_0"},
        # hidden 64: only the 256-wide MLP rows take K-quants (llama-quantize falls back to F16 for the others)
        "flux_tiny64-Q4_K_M.gguf": {"GGUF Q4_K"}, "flux_tiny64-Q5_K_M.gguf": {"GGUF Q5_K"}}


def render(pipe) -> torch.Tensor:
    return render_with("flux", pipe, FAST)


@pytest.fixture(scope="module")
def wide_folder(tmp_path_factory) -> str:
    """A diffusers folder of the hidden-64 tiny Flux: what gives the RoPE axes its weights cannot tell."""
    folder = str(tmp_path_factory.mktemp("configs") / "flux-tiny64")
    wide_flux().save_pretrained(folder)
    return folder


def _load(path: str, dtype=torch.float32, **kwargs):
    return load_single_file(path, dtype, CPU, **kwargs)


# --- weights: equal to the reference dequantization, to the bit -----------------------------------------------
@pytest.mark.parametrize("dtype_prefix", list(DTYPES))
@pytest.mark.parametrize("name", list(FP8_DENOISERS))
def test_comfyui_fp8_denoisers_equal_comfyuis_own_dequantization(name, dtype_prefix, tmp_path):
    dtype = DTYPES[dtype_prefix]
    pipe = _load(models_folder(str(tmp_path), name), dtype)
    reference = expected(name)
    layers = [k[: -len(".weight")] for k in reference if "/" not in k]
    assert len(layers) == len(MANIFEST["quantized_layers"]["flux"]) == 26
    different = [layer for layer in layers if not bits_equal(original_weight(pipe.transformer, layer),
                                                             reference[f"{dtype_prefix}{layer}.weight"])]
    assert not different
    kept = quantized_layers(pipe.transformer)
    if FP8_DENOISERS[name] is None:
        assert not kept
    else:  # 26 BFL layers are 40 diffusers Linears (qkv and linear1 split by rows), all kept in 8 bits
        assert len(kept) == 40 and set(kept.values()) == {FP8_DENOISERS[name]}
        assert all(m.stored.element_size() == 1 for m in pipe.transformer.modules() if hasattr(m, "stored"))


@pytest.mark.parametrize("dtype_prefix", list(DTYPES))
@pytest.mark.parametrize("name", list(T5_FILES))
def test_comfyui_fp8_t5_encoders_load_and_equal_comfyuis_own_dequantization(name, dtype_prefix, tmp_path):
    dtype = DTYPES[dtype_prefix]
    pipe = _load(models_folder(str(tmp_path), "flux_tiny_bf16.safetensors", t5=name), dtype)
    reference = expected(name)
    t5 = pipe.text_encoder_2
    for key in (k for k in reference if "/" not in k):
        # in a float16 model T5's wo layers compute in float32 (transformers' _keep_in_fp32_modules, as diffusers
        # loads them): ComfyUI's float32 dequantization is theirs
        prefix = "" if dtype == torch.float16 and ".wo." in key else dtype_prefix
        assert bits_equal(t5.get_submodule(key[: -len(".weight")]).weight, reference[prefix + key]), key
    kept = quantized_layers(t5)
    assert len(kept) == 12 and set(kept.values()) == {T5_FILES[name]}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(GGUF))
def test_gguf_denoisers_equal_gguf_py_dequantization(name, dtype, tmp_path, wide_folder):
    folders = (wide_folder,) if name.startswith("flux_tiny64") else ()
    pipe = _load(models_folder(str(tmp_path), name), dtype, config_folders=folders)
    reference = expected(name)
    different = [k for k, v in reference.items()
                 if not bits_equal(original_weight(pipe.transformer, k[: -len(".weight")]), v.to(dtype))]
    assert not different and len(reference) in (26, 4)
    kinds = set(quantized_layers(pipe.transformer).values())
    assert kinds == GGUF[name]  # each block type kept as stored (K-quant files upgrade some layers)
    if name.startswith("flux_tiny64"):  # made from the wide model: every other weight is its bf16/f16 value
        source = wide_flux().transformer.state_dict()
        state = pipe.transformer.state_dict()
        plain = [k for k in state if k.endswith("norm.key_norm.weight") or k.startswith("x_embedder")]
        assert plain and all(torch.equal(state[k], source[k].to(torch.bfloat16).to(dtype)) for k in plain)


@pytest.mark.parametrize("name", ["flux_tiny-BF16.gguf", "flux_tiny-F16.gguf"])
def test_unquantized_gguf_files_of_comfyui_ggufs_converter_load_their_exact_weights(name, tmp_path):
    from loradeck.core.families.flux.names import flux_names
    from loradeck.core.models.quantized.reading import gguf_header
    from original_layout import flux_to_original

    path = models_folder(str(tmp_path), name)
    pipe = _load(path)
    source = flux_to_original(fresh("flux").transformer.state_dict(), "")  # the float32 model convert.py read
    stored = gguf_header(path).dtypes
    cast = {"GGML_F32": torch.float32, "GGML_F16": torch.float16, "GGML_BF16": torch.bfloat16}
    weights = [k for k in source if k.endswith(".weight") and k[: -len(".weight")] in flux_names(pipe.transformer)]
    assert len(weights) == 34  # every Linear weight of the tiny Flux, in BFL names
    for key in weights:  # convert.py: F32 for <= 1024 values, else BF16 (bf16 source) / F16 (float32 source)
        want = source[key].to(torch.bfloat16 if "BF16" in name else torch.float32).to(cast[stored[key]])
        assert torch.equal(original_weight(pipe.transformer, key[: -len(".weight")]), want.float()), key
    assert not quantized_layers(pipe.transformer)


# --- images: fp16/bf16 split files give the diffusers folder's images -----------------------------------------
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_split_layout_images_equal_the_diffusers_folder(dtype, tmp_path, use_models):
    from loradeck.nodes import NODE_CLASS_MAPPINGS

    pipe = fresh("flux")
    for component in (pipe.transformer, pipe.text_encoder, pipe.text_encoder_2, pipe.vae):
        component.to(torch.bfloat16)  # the weights as ComfyUI's bf16 files hold them
    folder = str(tmp_path / "diffusers" / "flux")
    pipe.save_pretrained(folder)
    split_files(str(tmp_path), pipe, dtype)
    use_models(str(tmp_path / "models"))
    name = "flux-tiny.safetensors"
    node = NODE_CLASS_MAPPINGS["LoadDiffusionModel|LoRADeck"]()
    assert name in node.INPUT_TYPES()["required"]["unet_name"][0]
    handle = node.load(name, str(dtype).removeprefix("torch."))[0]
    reference = load_folder(folder, dtype, CPU)
    assert (render(handle.owner.pipe) - render(reference)).abs().max() <= 2 / 255


def test_comfyuis_bf16_denoiser_file_gives_the_bf16_models_images(tmp_path):
    bf16 = fresh("flux")
    bf16.transformer.to(torch.bfloat16)
    bf16.text_encoder_2.to(torch.bfloat16)
    pipe = _load(models_folder(str(tmp_path), "flux_tiny_bf16.safetensors"), torch.float32)
    state = pipe.transformer.state_dict()
    assert all(torch.equal(v, bf16.transformer.state_dict()[k].float()) for k, v in state.items())
    bf16.transformer.to(torch.float32)
    bf16.text_encoder_2.to(torch.float32)
    bf16.text_encoder.to(torch.bfloat16).to(torch.float32)
    bf16.vae.to(torch.bfloat16).to(torch.float32)
    assert (render(pipe) - render(bf16)).abs().max() <= 2 / 255


# --- LoRAs on quantized weights: exact, unfused, strengths are scale writes, fusing refused --------------------
LORA_CASES = [*(n for n, kept in FP8_DENOISERS.items() if kept), *GGUF]


@pytest.fixture(scope="module")
def lora_files(tmp_path_factory) -> dict[str, str]:
    """A kohya (sd-scripts) LoRA with BFL names for the tiny Flux, and a diffusers one for the hidden-64 model."""
    from lora_fixtures import save_family_lora

    root = tmp_path_factory.mktemp("loras")
    kohya = os.path.join(os.path.dirname(__file__), "fixtures", "trainers", "flux_kohya_bf16.safetensors")
    return {"tiny": kohya, "wide": _wide_lora(str(root / "wide.safetensors")),
            "diffusers": save_family_lora("flux", str(root / "flux.safetensors"), seed=5)}


def _wide_lora(path: str) -> str:
    from diffusers import FluxPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    transformer = wide_flux().transformer
    torch.manual_seed(7)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=2, target_modules=["to_q", "to_k", "to_v", "to_out.0",
                                                                          "proj_out", "ff.net.2"],
                                       init_lora_weights=False))
    folder, name = os.path.split(path)
    FluxPipeline.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(transformer),
                                   weight_name=name)
    return path


@pytest.mark.parametrize("name", LORA_CASES)
def test_a_lora_on_quantized_weights_equals_it_on_the_dequantized_weights(name, tmp_path, lora_files, wide_folder):
    wide = name.startswith("flux_tiny64")
    pipe = _load(models_folder(str(tmp_path), name, t5="t5_tiny_fp8_e4m3fn_scaled.safetensors"),
                 config_folders=(wide_folder,) if wide else ())
    dense = dequantized_copy(pipe)
    files = [lora_files["wide"]] if wide else [lora_files["tiny"], lora_files["diffusers"]]
    quant_deck, dense_deck = Deck(pipe), Deck(dense)
    for deck in (quant_deck, dense_deck):
        for i, path in enumerate(files):
            deck.add(path, name=f"l{i}", model=0.8, clip=0.6)
    base_layers = quantized_layers(pipe.transformer)
    image = render(quant_deck.pipe)
    assert torch.equal(image, render(dense_deck.pipe))
    carriers = [m for m in pipe.transformer.modules() if hasattr(m, "base_layer")
                and hasattr(m.base_layer, "quantized")]
    assert carriers  # peft's LoRA layers wrap the quantized layers: the LoRA runs unfused on top
    loads = quant_deck.owner.loads
    for deck in (quant_deck, dense_deck):
        deck.set_weights("l0", model=-0.3, clip=1.2)
    assert quant_deck.owner.loads == loads  # a strength change read nothing and injected nothing
    changed = render(quant_deck.pipe)
    assert torch.equal(changed, render(dense_deck.pipe)) and not torch.equal(changed, image)
    with pytest.raises(FuseError, match=r"keeps its weight quantized \((fp8|GGUF) .*nothing was fused"):
        quant_deck.fuse()
    assert torch.equal(render(quant_deck.pipe), changed)  # refused: nothing changed
    assert quantized_layers(pipe.transformer) == base_layers


# --- any depth and width of a known architecture ----------------------------------------------------------------
def _variant():
    """A Flux with fewer blocks and another width than any shipped config: 1 double + 3 single blocks of width 48."""
    from diffusers import FluxTransformer2DModel

    pipe = fresh("flux")
    torch.manual_seed(3)
    pipe.transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=3, attention_head_dim=16, num_attention_heads=3,
        joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8]).eval()
    return pipe


def test_a_flux_of_other_depth_and_width_loads_from_files_alone(tmp_path):
    variant = _variant()
    path = split_files(str(tmp_path), variant, torch.float32, "flux-lite-tiny.safetensors")
    pipe = _load(path)
    config = pipe.transformer.config
    assert (config.num_layers, config.num_single_layers, config.num_attention_heads) == (1, 3, 3)
    want = variant.transformer.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in pipe.transformer.state_dict().items())
    assert (render(pipe) - render(variant)).abs().max() <= 2 / 255


def test_what_the_shapes_cannot_tell_comes_from_config_folders(tmp_path, wide_folder):
    path = models_folder(str(tmp_path), "flux_tiny64-Q4_K_M.gguf")
    with pytest.raises(PipelineLoadError) as err:
        _load(path)
    message = str(err.value)
    assert "'flux_tiny64-Q4_K_M.gguf' is a tiny Flux (built-in) checkpoint" in message
    assert ("heads are 32 wide (the denoiser's double_blocks.0.img_attn.norm.key_norm.scale [32]), but axes_dims_rope "
            "[4, 4, 8] (the shipped tiny Flux (built-in) config) adds up to 16") in message
    assert "config_folders" in message
    tiny_folder = str(tmp_path / "tiny-flux")
    fresh("flux").save_pretrained(tiny_folder)  # a folder of another Flux: its config disagrees, it is not used
    with pytest.raises(PipelineLoadError, match="axes_dims_rope"):
        _load(path, config_folders=(tiny_folder,))
    pipe = _load(path, config_folders=(tiny_folder, wide_folder))
    assert list(pipe.transformer.config.axes_dims_rope) == WIDE["axes_dims_rope"]


def test_a_real_size_flux_with_fewer_blocks_takes_the_shipped_config_for_the_rest():
    """Flux.1 Lite / Flex.1-style: FLUX.1's width with 8 double blocks; shapes only (meta tensors)."""
    from diffusers import FluxTransformer2DModel

    from loradeck.core.families import SINGLE_FILE_ARCHS
    from loradeck.core.models import configs
    from loradeck.core.models.arch import Header
    from loradeck.core.models.single_file import identify
    from original_layout import flux_to_original

    with torch.device("meta"):
        model = FluxTransformer2DModel(num_layers=8, num_single_layers=38, guidance_embeds=True,
                                       in_channels=64, joint_attention_dim=4096, pooled_projection_dim=768)
    shapes = {k: tuple(v.shape) for k, v in flux_to_original(model.state_dict(), "").items()}
    header = Header("/models/diffusion_models/flux.1-lite-8b.safetensors", shapes, {}, {}, None)
    arch = identify(header)
    assert arch.key == "flux-dev" and arch in SINGLE_FILE_ARCHS
    resolved = configs.resolve(arch, header)
    try:
        transformer = resolved.arch
        assert "num_layers 8" in transformer.title
        config = FluxTransformer2DModel.load_config(transformer.config_dir, subfolder="transformer")
        assert (config["num_layers"], config["num_single_layers"], config["axes_dims_rope"]) == (8, 38, [16, 56, 56])
        assert resolved.source("transformer", "num_layers") == "the denoiser's 8 double_blocks"
    finally:
        resolved.cleanup()
    assert not os.path.exists(transformer.configs)


# --- parts: found by keys and shapes, or picked; a missing one named with what decided it -----------------------
def test_a_missing_text_encoder_is_named_with_the_config_value_that_decided_it(tmp_path):
    path = models_folder(str(tmp_path), "flux_tiny-Q8_0.gguf", t5="")
    with pytest.raises(PipelineLoadError) as err:
        _load(path)
    message = str(err.value)
    assert message.count("it needs") == 1 and "T5-XXL text encoder (text_encoder_2: width 32, 2 layers;" in message
    assert "d_model from the denoiser's txt_in.weight [32, 32]" in message


def test_parts_picked_explicitly_are_used_or_refused_by_their_shapes(tmp_path, use_models):
    from loradeck.nodes import NODE_CLASS_MAPPINGS

    path = models_folder(str(tmp_path), "flux_tiny-Q4_0.gguf", t5="t5_tiny_fp8_e4m3fn_mixed.safetensors",
                         folder="unet")  # ComfyUI's older folder name
    models = os.path.dirname(os.path.dirname(path))
    shutil.copyfile(fixture("t5_tiny_fp8_e4m3fn.safetensors"),
                    os.path.join(models, "text_encoders", "t5-plain.safetensors"))
    use_models(models)
    node = NODE_CLASS_MAPPINGS["LoadDiffusionModel|LoRADeck"]()
    inputs = node.INPUT_TYPES()
    assert "flux_tiny-Q4_0.gguf" in inputs["required"]["unet_name"][0]
    assert {"t5-plain.safetensors", "clip_l.safetensors"} <= set(inputs["optional"]["text_encoder_1"][0])
    found = node.load("flux_tiny-Q4_0.gguf", "float32")[0].owner.pipe  # two T5s of equal shapes: the first by name
    picked = node.load("flux_tiny-Q4_0.gguf", "float32",
                       text_encoder_2="t5_tiny_fp8_e4m3fn_mixed.safetensors")[0].owner.pipe
    assert found is not picked  # another pipeline: the picked parts are part of what is cached
    assert set(quantized_layers(found.text_encoder_2).values()) == {"fp8 e4m3fn"}
    assert set(quantized_layers(picked.text_encoder_2).values()) == {"fp8 e4m3fn scaled"}
    shutil.copyfile(os.path.join(models, "vae", "ae.safetensors"), os.path.join(models, "clip", "ae.safetensors"))
    with pytest.raises(PipelineLoadError, match="the text encoder file 'ae.safetensors' that was picked .* fits none"):
        node.load("flux_tiny-Q4_0.gguf", "float32", text_encoder_1="ae.safetensors")
    other_vae = {k: torch.zeros(v.shape[0], 4, *v.shape[2:]) if k == "decoder.conv_in.weight" else v
                 for k, v in load_file(os.path.join(models, "vae", "ae.safetensors")).items()}
    save_file(other_vae, os.path.join(models, "vae", "sdxl_vae.safetensors"))
    with pytest.raises(PipelineLoadError, match=r"the VAE file 'sdxl_vae.safetensors' that was picked is a VAE \(4 "
                                                r"latent channels\), not a VAE \(1 latent channel; latent_channels "
                                                r"from the denoiser's img_in.weight \[32, 4\]"):
        node.load("flux_tiny-Q4_0.gguf", "float32", vae="sdxl_vae.safetensors")


# --- hostile files: refused naming the file -------------------------------------------------------------------
def _scaled(tmp_path, edit) -> str:
    tensors = load_file(fixture("flux_tiny_fp8_e4m3fn_scaled.safetensors"))
    edit(tensors)
    path = str(tmp_path / "hostile.safetensors")
    save_file(tensors, path)
    return path


SCALE = "double_blocks.0.img_attn.qkv.scale_weight"
HOSTILE_FP8 = {
    "scale 0": (lambda t: t.update({SCALE: torch.tensor(0.0)}), "weight scale is 0.0: the weights would be 0"),
    "scale NaN": (lambda t: t.update({SCALE: torch.tensor(float("nan"))}), "weight scale is nan"),
    "scale inf": (lambda t: t.update({SCALE: torch.tensor(float("inf"))}), "weight scale is inf"),
    "scale negative": (lambda t: t.update({SCALE: torch.tensor(-0.5)}), "would be negated"),
    "scale per channel": (lambda t: t.update({SCALE: torch.ones(3)}), r"has shape \(3,\); ComfyUI needs one value"),
    "scale integer": (lambda t: t.update({SCALE: torch.tensor(2)}), "weight scale is I64, not a float"),
    "weight missing": (lambda t: t.pop("double_blocks.1.img_attn.proj.weight"), "without its weight"),
    "no marker": (lambda t: t.pop("scaled_fp8"), "legacy fp8 scales without a scaled_fp8 marker"),
    "e5m2 marker": (lambda t: t.update({"scaled_fp8": torch.zeros(0, dtype=torch.float8_e5m2)}),
                    "marker dtype F8_E5M2"),
}


@pytest.mark.parametrize("case", list(HOSTILE_FP8))
def test_hostile_scaled_fp8_files_are_refused_naming_the_file(case, tmp_path):
    edit, reason = HOSTILE_FP8[case]
    path = _scaled(tmp_path, edit)
    with pytest.raises(PipelineLoadError, match=rf"'hostile.safetensors' is refused: .*{reason}"):
        _load(models_folder(str(tmp_path), path))


# --- SD3: the same machinery through its own name table -------------------------------------------------------
def _scaled_fp8(tensors: dict, blocks: tuple[str, ...] = ("joint_blocks.",), fmt: str = "scaled") -> dict:
    """A state dict in one of ComfyUI's fp8 layouts: every 2-D weight under ``blocks`` as float8_e4m3fn, with
    ``fmt`` "scaled" (legacy: a float32 ``scale_weight`` = amax / 448, ComfyUI's "recalculate" scale, and the
    ``scaled_fp8`` marker), "comfy_quant" (the same scale as ``weight_scale`` plus the per-layer ``comfy_quant`` JSON
    ComfyUI 0.8.0 writes) or "plain" (the weights cast, no scales: ``t5xxl_fp8_e4m3fn``'s layout)."""
    out = {"scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)} if fmt == "scaled" else {}
    conf = torch.frombuffer(bytearray(b'{"format": "float8_e4m3fn"}'), dtype=torch.uint8)
    for key, value in tensors.items():
        if key.endswith(".weight") and value.dim() == 2 and key.startswith(blocks):
            layer = key[: -len(".weight")]
            scale = (value.float().abs().max() / 448).reshape(()) if fmt != "plain" else torch.tensor(1.0)
            out[key] = (value.float() / scale).clamp(-448, 448).to(torch.float8_e4m3fn)
            if fmt == "scaled":
                out[layer + ".scale_weight"] = scale
            elif fmt == "comfy_quant":
                out[layer + ".weight_scale"], out[layer + ".comfy_quant"] = scale, conf.clone()
        else:
            out[key] = value
    return out


def test_sd3_split_files_keep_fp8_weights_through_its_name_table(tmp_path):
    from lora_fixtures import save_family_lora
    from loradeck.core.families.sd3.names import sd3_names
    from loradeck.core.models.quantized.comfy_fp8 import dequant_fp8
    from original_layout import clip_to_ldm, sd3_to_original, vae_to_ldm
    from single_file_fixtures import save

    source = fresh("sd3")
    models = tmp_path / "models"
    stored = _scaled_fp8(sd3_to_original(source.transformer.state_dict(), prefix=""))
    path = save(stored, str(models / "diffusion_models" / "sd3-tiny_fp8_scaled.safetensors"))  # the MMDiT alone
    save(vae_to_ldm(source.vae.state_dict(), prefix=""), str(models / "vae" / "sd3_vae.safetensors"))
    save(clip_to_ldm(source.text_encoder.state_dict(), ""), str(models / "text_encoders" / "clip_l.safetensors"))
    save(clip_to_ldm(source.text_encoder_2.state_dict(), ""), str(models / "text_encoders" / "clip_g.safetensors"))
    pipe = _load(path)
    kept, placed = quantized_layers(pipe.transformer), 0
    assert set(kept.values()) == {"fp8 e4m3fn scaled"}
    table = sd3_names(pipe.transformer)
    for key in (k for k in stored if k.endswith(".scale_weight")):
        layer = key[: -len(".scale_weight")]
        dense = dequant_fp8(stored[layer + ".weight"], float(stored[key]), torch.float32, "float8_e4m3fn")
        target = table[layer]
        parts = [(target, ((0, dense.shape[0]),))] if isinstance(target, str) else target.parts
        for name, ranges in parts:
            rows = torch.cat([dense[a:b] for a, b in ranges])
            assert name in kept and torch.equal(pipe.transformer.get_submodule(name).weight, rows), name
            placed += 1
    assert placed == len(kept) > 20  # every scaled layer kept, its qkv split into q, k, v by the table
    lora = save_family_lora("sd3", str(tmp_path / "sd3-lora.safetensors"), seed=2)
    quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
    assert torch.equal(render_with("sd3", quant_deck.pipe, FAST), render_with("sd3", dense_deck.pipe, FAST))


def test_compiled_quantized_denoiser_keeps_strength_changes_free_of_recompiles(tmp_path, lora_files):
    """Compile Pipeline on a GGUF denoiser: the envelope slots LoRAs around the quantized layers as around dense
    ones, so a strength change recompiles nothing and the output equals the eager pipeline's."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    path = models_folder(str(tmp_path), "flux_tiny-Q8_0.gguf")
    compiled = Deck(_load(path)).add(lora_files["tiny"], name="k").compile(backend="eager", max_rank=4,
                                                                          max_adapters=2)
    eager = Deck(_load(path)).add(lora_files["tiny"], name="k")
    try:
        assert (render(compiled.pipe) - render(eager.pipe)).abs().max() <= 1e-4
        frames = int(counters["frames"]["total"])
        slotted = [m for m in compiled.pipe.transformer.modules() if hasattr(m, "loradeck_scale")
                   and hasattr(m.base_layer, "quantized")]
        assert slotted and frames >= 1
        for deck in (compiled, eager):
            deck.set_weights("k", model=0.4)
        assert (render(compiled.pipe) - render(eager.pipe)).abs().max() <= 1e-4
        assert int(counters["frames"]["total"]) == frames
    finally:
        torch._dynamo.reset()


# --- Chroma and Z-Image: the same machinery through their own name tables ---------------------------------------
def _chroma_files(source, models, fmt: str) -> tuple[dict, dict]:
    from original_layout import chroma_to_original, t5_to_ldm, vae_to_ldm
    from single_file_fixtures import save

    save(vae_to_ldm(source.vae.state_dict(), prefix=""), str(models / "vae" / "ae.safetensors"))
    blocks = ("double_blocks.", "single_blocks.")
    return (_scaled_fp8(chroma_to_original(source.transformer.state_dict(), prefix=""), blocks, fmt),
            _scaled_fp8(t5_to_ldm(source.text_encoder.state_dict(), ""), ("encoder.block.",), fmt))


def _zimage_files(source, models, fmt: str) -> tuple[dict, dict]:
    from original_layout import qwen3_to_comfy, vae_to_ldm, zimage_to_original
    from single_file_fixtures import save

    save(vae_to_ldm(source.vae.state_dict(), prefix=""), str(models / "vae" / "ae.safetensors"))
    return (_scaled_fp8(zimage_to_original(source.transformer.state_dict(), prefix=""), ("layers.",), fmt),
            _scaled_fp8(qwen3_to_comfy(source.text_encoder.state_dict()), ("model.layers.",), fmt))


def _fp8_layers(stored: dict) -> dict[str, torch.Tensor]:
    """Each fp8 layer of a ``_scaled_fp8`` state dict -> its dequantization (ComfyUI's: ``w.to(D) * scale``)."""
    from loradeck.core.models.quantized.comfy_fp8 import dequant_fp8

    out = {}
    for key in (k for k, v in stored.items() if v.dtype == torch.float8_e4m3fn and k.endswith(".weight")):
        layer = key[: -len(".weight")]
        scale = stored.get(layer + ".scale_weight", stored.get(layer + ".weight_scale", torch.tensor(1.0)))
        out[layer] = dequant_fp8(stored[key], float(scale), torch.float32, "float8_e4m3fn")
    return out


def _placed(key: str, transformer, layers: dict[str, torch.Tensor]) -> dict[str, str]:
    """Every quantized Linear of ``transformer`` holds exactly its rows of one of ``layers`` (original layer ->
    reference dense weight), placed by the family's table (a layer it does not list: the Linear of its own name),
    and every one of ``layers`` is placed. Returns the kept layers (diffusers name -> what they are)."""
    from loradeck.core.families import FAMILIES

    kept, table, placed = quantized_layers(transformer), FAMILIES[key].original_names(transformer), 0
    for layer, dense in layers.items():
        target = table.get(layer, layer)
        parts = [(target, ((0, dense.shape[0]),))] if isinstance(target, str) else target.parts
        for name, ranges in parts:
            rows = torch.cat([dense[a:b] for a, b in ranges])
            assert name in kept and torch.equal(transformer.get_submodule(name).weight, rows), name
            placed += 1
    assert placed == len(kept) >= 14  # Z-Image GGUF: feed_forward.w2 (rows of 85) falls back to F16
    return kept


@pytest.mark.parametrize("fmt", ["scaled", "comfy_quant", "plain"])
@pytest.mark.parametrize("key,files", [("chroma", _chroma_files), ("zimage", _zimage_files)])
def test_chroma_and_zimage_fp8_split_files_keep_fp8_weights(key, files, fmt, tmp_path):
    """A Chroma / Z-Image denoiser alone in diffusion_models/ in ComfyUI's fp8 layouts (legacy scaled_fp8, per-layer
    comfy_quant, plain), with a text encoder (T5 / Qwen3) in text_encoders/ in the same layout: every fp8 denoiser
    layer stays fp8 on the diffusers Linear(s) the family's table names (Z-Image's feed-forward and modulation layers
    by their shared names) with exactly the dequantized rows, the encoder's weights equal the dequantization (T5
    kept in fp8, Qwen3 dequantized at load), and (scaled) a LoRA on top equals it on the dequantized weights."""
    from lora_fixtures import save_family_lora
    from single_file_fixtures import save

    source, models = fresh(key), tmp_path / "models"
    denoiser, encoder = files(source, models, fmt)
    save(encoder, str(models / "text_encoders" / f"{key}_te_fp8_e4m3fn_{fmt}.safetensors"))
    pipe = _load(save(denoiser, str(models / "diffusion_models" / f"{key}-tiny_fp8_e4m3fn_{fmt}.safetensors")))
    kind = "fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"
    assert set(_placed(key, pipe.transformer, _fp8_layers(denoiser)).values()) == {kind}
    te, linear = dict(pipe.text_encoder.named_modules()), 0
    for layer, dense in _fp8_layers(encoder).items():
        module = te[layer.removeprefix("model.") if key == "zimage" else layer]
        assert torch.equal(module.weight, dense), layer
        linear += not isinstance(module, torch.nn.Embedding)  # T5's relative_attention_bias: dequantized at load
    # T5 built by this module keeps its Linear layers in fp8; the Qwen3 encoder is built dense by transformers
    assert len(quantized_layers(pipe.text_encoder)) == (linear if key == "chroma" else 0) and linear >= 12
    if fmt == "scaled":
        lora = save_family_lora(key, str(tmp_path / f"{key}-lora.safetensors"), seed=2)
        quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
        assert torch.equal(render_with(key, quant_deck.pipe, FAST), render_with(key, dense_deck.pipe, FAST))


@pytest.mark.parametrize("name", ["chroma_tiny-Q8_0.gguf", "chroma_tiny-Q4_0.gguf", "zimage_tiny-Q8_0.gguf",
                                  "zimage_tiny-Q4_0.gguf"])
def test_chroma_and_zimage_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    """ComfyUI-GGUF files of the tiny Chroma (arch flux) and Z-Image (arch lumina2), made by convert.py and
    lcpp.patch's rules with ggml's quantizer, alone in diffusion_models/: every quantized tensor stays quantized on
    the Linear(s) the family's table names with exactly gguf-py's dequantization, and a LoRA on top equals it on the
    dequantized weights (unfused)."""
    from lora_fixtures import save_family_lora
    from original_layout import chroma_to_original, t5_to_ldm, vae_to_ldm, zimage_to_original
    from single_file_fixtures import save

    key, kind = name.split("_")[0], name.split("-")[1].split(".")[0]
    source, models = fresh(key), tmp_path / "models"
    if kind == "Q8_0":  # the files' bf16 source is the built-in tiny model (fresh(key)) in the original names
        rename = {"chroma": chroma_to_original, "zimage": lambda sd: zimage_to_original(sd, prefix="")}[key]
        want = {k: v.to(torch.bfloat16) for k, v in rename(source.transformer.state_dict()).items()}
        stored = load_file(fixture(f"{key}_tiny_bf16.safetensors"))
        assert stored.keys() == want.keys() and all(bits_equal(v, want[k]) for k, v in stored.items())
    save(vae_to_ldm(source.vae.state_dict(), prefix=""), str(models / "vae" / "ae.safetensors"))
    encoder = {"chroma": lambda sd: t5_to_ldm(sd, ""), "zimage": lambda sd: {"model." + k: v for k, v in sd.items()}}
    save(encoder[key](source.text_encoder.state_dict()), str(models / "text_encoders" / f"{key}_te.safetensors"))
    os.makedirs(models / "diffusion_models")
    path = shutil.copyfile(fixture(name), models / "diffusion_models" / name)
    pipe = _load(str(path))
    kept = _placed(key, pipe.transformer, {k.removesuffix(".weight"): v for k, v in expected(name).items()})
    assert set(kept.values()) == {f"GGUF {kind}"}
    lora = save_family_lora(key, str(tmp_path / f"{key}-lora.safetensors"), seed=2)
    quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
    assert torch.equal(render_with(key, quant_deck.pipe, FAST), render_with(key, dense_deck.pipe, FAST))
    with pytest.raises(FuseError, match=r"keeps its weight quantized \(GGUF .*nothing was fused"):
        quant_deck.fuse()


@pytest.mark.parametrize("key", ["chroma", "zimage"])
def test_chroma_and_zimage_bf16_split_files_give_the_diffusers_folders_images(key, tmp_path, use_models):
    """ComfyUI's bf16 split files of Chroma / Z-Image (denoiser in diffusion_models/, T5 / Qwen3 in text_encoders/,
    VAE in vae/), listed and loaded by Load Diffusion Model: the images of the diffusers folder of the same weights."""
    from loradeck.nodes import NODE_CLASS_MAPPINGS
    from original_layout import chroma_to_original, qwen3_to_comfy, t5_to_ldm, vae_to_ldm, zimage_to_original
    from single_file_fixtures import save

    pipe, models = fresh(key), tmp_path / "models"
    for component in (pipe.transformer, pipe.text_encoder, pipe.vae):
        component.to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / key)
    pipe.save_pretrained(folder)
    encoder = t5_to_ldm(pipe.text_encoder.state_dict(), "") if key == "chroma" else \
        qwen3_to_comfy(pipe.text_encoder.state_dict())
    denoiser = chroma_to_original(pipe.transformer.state_dict(), prefix="") if key == "chroma" else \
        zimage_to_original(pipe.transformer.state_dict(), prefix="")
    save(encoder, str(models / "text_encoders" / f"{key}_te_bf16.safetensors"))
    save(vae_to_ldm(pipe.vae.state_dict(), prefix=""), str(models / "vae" / "ae.safetensors"))
    save(denoiser, str(models / "diffusion_models" / f"{key}-tiny_bf16.safetensors"))
    use_models(str(models))
    node = NODE_CLASS_MAPPINGS["LoadDiffusionModel|LoRADeck"]()
    assert f"{key}-tiny_bf16.safetensors" in node.INPUT_TYPES()["required"]["unet_name"][0]
    handle = node.load(f"{key}-tiny_bf16.safetensors", "bfloat16")[0]
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe  # with the family's fix, as the node's
    assert (render_with(key, handle.owner.pipe, FAST) - render_with(key, reference, FAST)).abs().max() <= 2 / 255
