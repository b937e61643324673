"""Wan from the files ComfyUI users have: the denoiser(s) alone in diffusion_models/ (bf16, ComfyUI's fp8 layouts,
ComfyUI-GGUF), UMT5 in text_encoders/ (carrying its tokenizer), the Wan 2.1 VAE in vae/; Wan 2.2 A14B as its two
expert files. The original-layout files are written by tests/wan_original_layout.py, whose output ComfyUI's own
WanModel, WanVAE and UMT5 load strictly and compute as diffusers does (tests/fixtures/model_files/MANIFEST_wan.json,
made by tools/fixtures/generators/model_files/make_wan_fixtures.py); the GGUF fixtures are ComfyUI-GGUF's
convert.py + lcpp.patch's rules, their references gguf-py's dequantization."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest
import torch
from model_file_fixtures import bits_equal, dequantized_copy, expected, fixture, quantized_layers
from safetensors.torch import load_file
from wan_original_layout import umt5_to_comfy, wan_to_original, wan_vae_to_original

from family_fixtures import PARAMS, fresh
from family_fixtures import render as render_with
from loradeck.core import Deck, FuseError, PipelineLoadError
from loradeck.core.families import BUILTINS
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import LocalFiles, load_single_file
from single_file_fixtures import save

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2, width=32, height=32)
HIGH, LOW = "wan2.2_t2v_high_noise_tiny_bf16.safetensors", "wan2.2_t2v_low_noise_tiny_bf16.safetensors"


def render(pipe) -> torch.Tensor:
    return render_with("wan", pipe, FAST)


def _load(path: str, dtype=torch.float32, **kwargs):
    return load_single_file(path, dtype, CPU, **kwargs)


def _a14b():
    """The built-in tiny Wan 2.2 A14B (two experts), a fresh copy."""
    pipe = BUILTINS["tiny-wan22"].tiny()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _parts(pipe, models, encoder=None, denoiser=None) -> None:
    """UMT5 in text_encoders/ and the VAE in vae/, in ComfyUI's layouts."""
    save(encoder if encoder is not None else umt5_to_comfy(pipe.text_encoder.state_dict()),
         str(models / "text_encoders" / "umt5_xxl_tiny.safetensors"))
    save(wan_vae_to_original(pipe.vae.state_dict()), str(models / "vae" / "wan_2.1_vae.safetensors"))


# --- the layouts: round trips through diffusers' own converters ---------------------------------------------------
def test_wan_vae_layout_is_diffusers_converter_on_the_released_shape_and_any_stage_size():
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    from loradeck.core.models import wan_vae

    with torch.device("meta"):  # the released Wan 2.1 VAE: 4 stages x (3 blocks + up-sampler), 384 wide
        released = AutoencoderKLWan()
    state = released.state_dict()
    original = wan_vae_to_original(state)
    assert "decoder.upsamples.14.residual.6.weight" in original and "decoder.upsamples.4.shortcut.weight" in original
    theirs, ours = convert_wan_vae_to_diffusers(dict(original)), wan_vae.to_diffusers(dict(original))
    assert theirs.keys() == ours.keys() == state.keys()
    assert all(theirs[k] is ours[k] for k in ours)
    shapes = {k: tuple(v.shape) for k, v in original.items()}
    assert wan_vae.find(shapes) == ("", "original", (384, 16)) == ("", "original", wan_vae.wanted(released.config))
    tiny = fresh("wan").vae.state_dict()  # 2 blocks per stage: diffusers' numbering does not fit, ours does
    assert wan_vae.to_diffusers(wan_vae_to_original(tiny)).keys() == tiny.keys()
    with torch.device("meta"):  # the Wan 2.2 VAE (TI2V-5B): 160 / 256 wide, 48 latent channels, residual stages
        wan22 = AutoencoderKLWan(base_dim=160, decoder_base_dim=256, z_dim=48, in_channels=12, out_channels=12,
                                 is_residual=True, patch_size=2, scale_factor_spatial=16)
    state = wan22.state_dict()
    original = wan_vae_to_original(state)
    assert "decoder.upsamples.0.upsamples.3.resample.1.weight" in original
    assert wan_vae.to_diffusers(dict(original)).keys() == state.keys()
    assert wan_vae.find({k: tuple(v.shape) for k, v in original.items()}) == ("", "wan2.2", (1024, 48))


def test_a_qwen_image_vae_in_the_wan_layout_builds_through_the_shared_path(tmp_path):
    """Qwen-Image's VAE (qwen_image_vae.safetensors) is the Wan 2.1 layout; diffusers has no single-file loader for
    ``AutoencoderKLQwenImage``: the shared builder renames it and loads every weight."""
    from diffusers import AutoencoderKLQwenImage

    from loradeck.core.models.build import builder_for

    torch.manual_seed(0)
    source = AutoencoderKLQwenImage(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2).eval()
    source.save_pretrained(str(tmp_path / "vae"))
    original = {"first_stage_model." + k: v for k, v in wan_vae_to_original(source.state_dict()).items()}
    model = builder_for(AutoencoderKLQwenImage)(AutoencoderKLQwenImage, "vae", original, str(tmp_path),
                                                torch.bfloat16)
    state = model.state_dict()
    assert state.keys() == source.state_dict().keys()
    assert all(torch.equal(state[k], v.to(torch.bfloat16)) for k, v in source.state_dict().items())


def test_wan_transformer_layout_round_trips_through_diffusers_converter():
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    state = fresh("wan").transformer.state_dict()
    original = wan_to_original(state, prefix="model.diffusion_model.")
    assert "model.diffusion_model.blocks.1.norm3.weight" in original and "model.diffusion_model.head.modulation" \
        in original
    back = convert_wan_transformer_to_diffusers(dict(original))
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


# --- bf16 split files: the diffusers folder's videos ----------------------------------------------------------------
@pytest.mark.parametrize("variant", ["t2v", "a14b", "ti2v"])
def test_bf16_split_files_give_the_diffusers_folders_videos(variant, tmp_path, use_models):
    """ComfyUI's bf16 split files (Wan 2.1: one denoiser; Wan 2.2 A14B: high- and low-noise experts by ComfyUI's
    names; TI2V-5B with the Wan 2.2 VAE), listed and loaded by Load Diffusion Model (the low-noise file picked: its
    pair found by name): the frames of the diffusers folder of the same weights."""
    from loradeck.nodes import NODE_CLASS_MAPPINGS

    pipe = {"t2v": lambda: fresh("wan"), "a14b": _a14b, "ti2v": lambda: BUILTINS["tiny-wan22-ti2v"].tiny()}[variant]()
    pipe.set_progress_bar_config(disable=True)
    models = tmp_path / "models"
    for component in (pipe.transformer, pipe.transformer_2, pipe.text_encoder, pipe.vae):
        if component is not None:
            component.to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / variant)
    pipe.save_pretrained(folder)
    _parts(pipe, models)
    if variant != "a14b":
        name = f"wan2.x_{variant}_tiny_bf16.safetensors"
        save(wan_to_original(pipe.transformer.state_dict()), str(models / "diffusion_models" / name))
    else:
        save(wan_to_original(pipe.transformer.state_dict()), str(models / "diffusion_models" / HIGH))
        save(wan_to_original(pipe.transformer_2.state_dict()), str(models / "diffusion_models" / LOW))
        name = LOW
    use_models(str(models))
    node = NODE_CLASS_MAPPINGS["LoadDiffusionModel|LoRADeck"]()
    assert name in node.INPUT_TYPES()["required"]["unet_name"][0]
    loaded = node.load(name, "bfloat16")[0].owner.pipe
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe
    assert (loaded.transformer_2 is None) == (variant != "a14b")
    assert loaded.config.expand_timesteps == (variant == "ti2v") and loaded.vae.config.z_dim == (48 if variant ==
                                                                                                  "ti2v" else 16)
    if variant == "a14b":  # each expert where it belongs
        for component in ("transformer", "transformer_2"):
            mine, theirs = getattr(loaded, component).state_dict(), getattr(reference, component).state_dict()
            assert all(torch.equal(mine[k], theirs[k]) for k in theirs), component
        assert loaded.config.boundary_ratio == reference.config.boundary_ratio == 0.875
    assert (render(loaded) - render(reference)).abs().max() <= 2 / 255


def _frames(pipe, image):
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        return pipe(image=image, prompt="a cat", num_frames=5, height=32, width=32, num_inference_steps=2,
                    generator=torch.Generator().manual_seed(0), output_type="pt").frames


def test_wan21_i2v_with_comfyuis_clip_vision_file_gives_the_diffusers_folders_video(tmp_path, use_models):
    """Wan 2.1 I2V from split files through Load Diffusion Model: the denoiser, UMT5, the VAE and the CLIP vision
    encoder in models/clip_vision as ComfyUI's clip_vision_h.safetensors holds it (transformers' names under
    vision_model., with the projection): the diffusers folder's frames from the same image; without the encoder
    file, one sentence says where to put it."""
    from PIL import Image
    from transformers import CLIPVisionModelWithProjection

    from loradeck.nodes import NODE_CLASS_MAPPINGS

    pipe, models = BUILTINS["tiny-wan-i2v"].tiny(), tmp_path / "models"
    for component in (pipe.transformer, pipe.text_encoder, pipe.vae, pipe.image_encoder):
        component.to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / "i2v")
    pipe.save_pretrained(folder)
    _parts(pipe, models)
    clip = CLIPVisionModelWithProjection(pipe.image_encoder.config).to(torch.bfloat16)
    clip.vision_model.load_state_dict(pipe.image_encoder.state_dict())
    state = {("" if k.startswith("visual_projection") else "vision_model.") + k.removeprefix("vision_model."): v
             for k, v in clip.state_dict().items()}
    assert "vision_model.encoder.layers.1.self_attn.q_proj.weight" in state and "visual_projection.weight" in state
    vision = save(state, str(models / "clip_vision" / "clip_vision_h.safetensors"))
    save(wan_to_original(pipe.transformer.state_dict()),
         str(models / "diffusion_models" / "wan2.1_i2v_tiny.safetensors"))
    use_models(str(models))
    loaded = NODE_CLASS_MAPPINGS["LoadDiffusionModel|LoRADeck"]().load("wan2.1_i2v_tiny.safetensors",
                                                                     "bfloat16")[0].owner.pipe
    reference = load_folder(folder, torch.bfloat16, CPU)
    assert type(loaded).__name__ == "WanImageToVideoPipeline" and loaded.transformer.config.image_dim == 32
    image = Image.fromarray((torch.rand(32, 32, 3) * 255).to(torch.uint8).numpy())
    assert (_frames(loaded, image) - _frames(reference, image)).abs().max() <= 2 / 255
    os.remove(vision)
    with pytest.raises(PipelineLoadError) as err:
        _load(str(models / "diffusion_models" / "wan2.1_i2v_tiny.safetensors"))
    assert "needs a CLIP vision image encoder (image_encoder: width 32, 2 layers, patch 4;" in str(err.value)
    assert "put clip_vision_h.safetensors in models/clip_vision" in str(err.value)


def test_wan22_i2v_a14b_experts_give_the_diffusers_folders_video_from_an_image(tmp_path):
    """Wan 2.2 I2V A14B (36 input channels, no image encoder) from its two bf16 expert files: the diffusers folder's
    frames from the same start image; a file whose name tells no pair asks for the other expert."""
    from PIL import Image

    pipe, models = BUILTINS["tiny-wan22-i2v"].tiny(), tmp_path / "models"
    for component in (pipe.transformer, pipe.transformer_2, pipe.text_encoder, pipe.vae):
        component.to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / "i2v22")
    pipe.save_pretrained(folder)
    _parts(pipe, models)
    names = ("wan2.2_i2v_high_noise_tiny_bf16.safetensors", "wan2.2_i2v_low_noise_tiny_bf16.safetensors")
    for name, expert in zip(names, (pipe.transformer, pipe.transformer_2), strict=True):
        save(wan_to_original(expert.state_dict()), str(models / "diffusion_models" / name))
    loaded = _load(str(models / "diffusion_models" / names[0]), torch.bfloat16)
    reference = load_folder(folder, torch.bfloat16, CPU)
    assert type(loaded).__name__ == "WanImageToVideoPipeline" and loaded.config.boundary_ratio == 0.9
    image = Image.fromarray((torch.rand(32, 32, 3) * 255).to(torch.uint8).numpy())
    assert (_frames(loaded, image) - _frames(reference, image)).abs().max() <= 2 / 255
    plain = shutil.copyfile(models / "diffusion_models" / names[0], models / "diffusion_models" / "i2v.safetensors")
    with pytest.raises(PipelineLoadError, match=r"low noise expert \(transformer_2\) \(its file\) is not beside it"):
        _load(str(plain))


@pytest.mark.parametrize("name,other", [
    ("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"),
    ("Wan2.2-T2V-A14B-LowNoise-Q4_K_S.gguf", "Wan2.2-T2V-A14B-HighNoise-Q4_K_S.gguf"),
    ("wan2.2_i2v_high-noise_14B.safetensors", "wan2.2_i2v_low-noise_14B.safetensors"),
    ("wan2.1_t2v_14B_bf16.safetensors", None), ("high_noise_and_low_noise.safetensors", None),
])
def test_expert_pairs_by_comfyuis_and_quantstacks_names(name, other):
    from loradeck.core.families.wan.single_file import experts

    found = experts(os.path.join("/m", name))
    if other is None:
        assert found is None
    else:
        high, low = (name, other) if "high" in name.lower() else (other, name)
        assert found == {"transformer": f"/m/{high}", "transformer_2": f"/m/{low}"}


def test_a_missing_expert_is_named_in_one_sentence_and_a_picked_one_is_used(tmp_path):
    source, models = _a14b(), tmp_path / "models"
    _parts(source, models)
    high = save(wan_to_original(source.transformer.state_dict()), str(models / "diffusion_models" / HIGH))
    with pytest.raises(PipelineLoadError) as err:
        _load(high)
    message = str(err.value)
    assert message.count("expert") == 3 and f"{LOW!r} is not beside it" in message
    assert "this file is the high noise expert (transformer)" in message and "low noise expert (transformer_2)" \
        in message
    # picked explicitly, under any name (a file named neither high nor low is the low-noise expert), and a Wan 2.1
    # 14B-named file with a picked pair becomes the two-expert model
    other = save(wan_to_original(source.transformer_2.state_dict()), str(tmp_path / "elsewhere" / "expert.safetensors"))
    files = LocalFiles.beside(high).picked(expert=other)
    pipe = _load(high, files=files)
    for component in ("transformer", "transformer_2"):
        mine, theirs = getattr(pipe, component).state_dict(), getattr(source, component).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), component
    plain = shutil.copyfile(high, models / "diffusion_models" / "wan_tiny.safetensors")
    assert _load(str(plain)).transformer_2 is None  # no pair named or picked: Wan 2.1
    assert _load(str(plain), files=LocalFiles.beside(str(plain)).picked(expert=other)).transformer_2 is not None
    # an expert of another architecture is refused
    wrong = {k: v for k, v in wan_to_original(source.transformer_2.state_dict()).items()
             if not k.startswith("blocks.1.")}
    save(wrong, str(models / "diffusion_models" / LOW))
    with pytest.raises(PipelineLoadError, match="has another architecture than"):
        _load(high)


# --- fp8: ComfyUI's three layouts, kept in 8 bits where the name table places them ---------------------------------
@pytest.mark.parametrize("fmt", ["scaled", "comfy_quant", "plain"])
def test_fp8_split_files_keep_fp8_weights(fmt, tmp_path):
    """A Wan denoiser in ComfyUI's fp8 layouts (wan2.1_t2v_1.3B_fp8_e4m3fn / *_fp8_scaled) with UMT5 in the same
    layout (umt5_xxl_fp8_e4m3fn_scaled): every fp8 block layer stays fp8 on the Linear Wan's table names with exactly
    the dequantized rows, UMT5's Linear layers too, and (scaled) a LoRA on top equals it on the dequantized weights."""
    from test_model_files import _fp8_layers, _placed, _scaled_fp8

    from lora_fixtures import save_family_lora

    source, models = fresh("wan"), tmp_path / "models"
    denoiser = _scaled_fp8(wan_to_original(source.transformer.state_dict()), ("blocks.",), fmt)
    encoder = _scaled_fp8(umt5_to_comfy(source.text_encoder.state_dict()), ("encoder.block.",), fmt)
    _parts(source, models, encoder=encoder)
    pipe = _load(save(denoiser, str(models / "diffusion_models" / f"wan_tiny_fp8_e4m3fn_{fmt}.safetensors")))
    kind = "fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"
    assert set(_placed("wan", pipe.transformer, _fp8_layers(denoiser)).values()) == {kind}
    te, linear = dict(pipe.text_encoder.named_modules()), 0
    for layer, dense in _fp8_layers(encoder).items():
        assert torch.equal(te[layer].weight, dense), layer
        linear += not isinstance(te[layer], torch.nn.Embedding)  # each block's relative_attention_bias: dequantized
    assert len(quantized_layers(pipe.text_encoder)) == linear == 14
    if fmt == "scaled":
        lora = save_family_lora("wan", str(tmp_path / "wan-lora.safetensors"), seed=2)
        quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
        assert torch.equal(render(quant_deck.pipe), render(dense_deck.pipe))


def test_fp8_embedders_in_modules_wan_keeps_in_float32_stay_fp8_in_bf16(tmp_path):
    """A file with every Linear in fp8, the time embedder too (a module diffusers keeps in float32): in bfloat16 those
    layers stay fp8 and compute at the model's dtype, and the video equals the dequantized model's."""
    from test_model_files import _scaled_fp8

    source, models = fresh("wan"), tmp_path / "models"
    parts = ("blocks.", "time_embedding.", "text_embedding.", "time_projection.", "head.")
    denoiser = _scaled_fp8(wan_to_original(source.transformer.state_dict()), parts, "scaled")
    _parts(source, models)
    pipe = _load(save(denoiser, str(models / "diffusion_models" / "wan_all_fp8_scaled.safetensors")), torch.bfloat16)
    kept = quantized_layers(pipe.transformer)
    assert len(kept) == 26 and "condition_embedder.time_embedder.linear_1" in kept
    assert pipe.transformer.condition_embedder.time_embedder.linear_1.bias.dtype == torch.bfloat16
    assert pipe.transformer.blocks[0].norm2.weight.dtype == torch.float32  # not quantized: kept in float32
    assert torch.equal(render(pipe), render(dequantized_copy(pipe)))


def test_both_a14b_experts_in_fp8_stay_fp8_with_their_own_weights(tmp_path):
    from test_model_files import _fp8_layers, _placed, _scaled_fp8

    source, models = _a14b(), tmp_path / "models"
    _parts(source, models)
    stored = {}
    for name, expert in ((HIGH, source.transformer), (LOW, source.transformer_2)):
        stored[name] = _scaled_fp8(wan_to_original(expert.state_dict()), ("blocks.",), "scaled")
        save(stored[name], str(models / "diffusion_models" / name.replace("bf16", "fp8_scaled")))
    pipe = _load(str(models / "diffusion_models" / HIGH.replace("bf16", "fp8_scaled")))
    for name, component in ((HIGH, pipe.transformer), (LOW, pipe.transformer_2)):
        assert set(_placed("wan", component, _fp8_layers(stored[name])).values()) == {"fp8 e4m3fn scaled"}
    assert not torch.equal(pipe.transformer.blocks[0].attn1.to_q.weight, pipe.transformer_2.blocks[0].attn1.to_q.weight)


# --- GGUF: ComfyUI-GGUF's files, equal to gguf-py's dequantization ------------------------------------------------
@pytest.mark.parametrize("name", ["wan_tiny-Q8_0.gguf", "wan_tiny-Q4_0.gguf"])
def test_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    """ComfyUI-GGUF files of the tiny Wan 2.1 (convert.py, lcpp.patch's LLM_ARCH_WAN rules, fix_5d_tensors for the
    5-D patch embedding): every quantized tensor stays quantized on the Linear Wan's table names with exactly
    gguf-py's dequantization (Q4_0 files keep ffn.2 in Q4_1, as llama-quantize upgrades it), a LoRA on top equals it
    on the dequantized weights, and fusing is refused."""
    from test_model_files import _placed

    from lora_fixtures import save_family_lora

    source, models = fresh("wan"), tmp_path / "models"
    if name.endswith("Q8_0.gguf"):  # the files' source is the built-in tiny model in the original names
        want = {k: v.to(torch.bfloat16) for k, v in wan_to_original(source.transformer.state_dict()).items()}
        stored = load_file(fixture("wan_tiny_bf16.safetensors"))
        assert stored.keys() == want.keys() and all(bits_equal(v, want[k]) for k, v in stored.items())
    _parts(source, models)
    os.makedirs(models / "diffusion_models")
    path = shutil.copyfile(fixture(name), models / "diffusion_models" / name)
    pipe = _load(str(path))
    kept = _placed("wan", pipe.transformer, {k.removesuffix(".weight"): v for k, v in expected(name).items()})
    kinds = {"wan_tiny-Q8_0.gguf": {"GGUF Q8_0"}, "wan_tiny-Q4_0.gguf": {"GGUF Q4_0", "GGUF Q4_1"}}[name]
    assert set(kept.values()) == kinds and len(kept) == 20
    with open(fixture("MANIFEST_wan.json"), encoding="utf-8") as f:
        assert name in json.load(f)["files"]
    lora = save_family_lora("wan", str(tmp_path / "wan-lora.safetensors"), seed=2)
    quant_deck, dense_deck = Deck(pipe).add(lora, name="l"), Deck(dequantized_copy(pipe)).add(lora, name="l")
    assert torch.equal(render(quant_deck.pipe), render(dense_deck.pipe))
    with pytest.raises(FuseError, match=r"keeps its weight quantized \(GGUF .*nothing was fused"):
        quant_deck.fuse()


def test_comfyuis_own_classes_loaded_the_original_layout_files():
    """What the generator measured with ComfyUI 0.8.0's WanModel, WanVAE and UMT5 on these layouts."""
    with open(fixture("MANIFEST_wan.json"), encoding="utf-8") as f:
        checks = json.load(f)["comfyui_checks"]
    assert checks["comfy_model_config"] == "WAN21_T2V" and checks["comfy_detected"]["num_layers"] == 2
    for key in ("transformer", "vae", "released_shape_vae", "wan22_vae", "umt5"):
        assert checks[f"{key}_strict_load_missing_unexpected"] == [0, 0], key
    assert checks["clip_vision_load_missing_unexpected"] == [0, 0]
    assert checks["transformer_max_abs_diff_vs_comfy_WanModel"] < 1e-3
    assert max(checks["vae_decode_max_abs_diff_vs_comfy_WanVAE"], checks["umt5_max_abs_diff_vs_comfy_T5"],
               checks["released_shape_vae_decode_max_abs_diff_vs_comfy_WanVAE"],
               checks["wan22_vae_decode_max_abs_diff_vs_comfy"],
               checks["wan22_vae_encode_max_abs_diff_vs_comfy"],
               checks["clip_vision_penultimate_max_abs_diff_vs_comfy"]) < 1e-4


# --- real sizes on the meta device: the config read off the shapes ------------------------------------------------
@pytest.mark.parametrize("size,name,key,heads,ffn", [
    ("1.3B", "wan2.1_t2v_1.3B_bf16.safetensors", "wan21-t2v-1.3b", 12, 8960),
    ("14B", "wan2.1_t2v_14B_bf16.safetensors", "wan21-t2v-14b", 40, 13824),
    ("A14B", "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan22-t2v-a14b", 40, 13824),
    ("20 blocks", "wan_1.3B_20_blocks.safetensors", "wan21-t2v-1.3b", 12, 8960),
    ("5B", "wan2.2_ti2v_5B_fp16.safetensors", "wan22-ti2v-5b", 24, 14336),
    ("I2V A14B", "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", "wan22-i2v-a14b", 40, 13824),
    ("I2V 14B", "wan2.1_i2v_480p_14B_fp16.safetensors", "wan21-i2v-14b", 40, 13824),
])
def test_real_size_configs_are_read_off_the_shapes(size, name, key, heads, ffn):
    from diffusers import WanTransformer3DModel

    from loradeck.core.models import configs
    from loradeck.core.models.arch import Header
    from loradeck.core.models.build import meta_component
    from loradeck.core.models.single_file import identify

    shipped = {"I2V A14B": "wan22-i2v-a14b", "I2V 14B": "wan21-i2v-14b"}.get(size) or \
        {40: "wan21-t2v-14b", 12: "wan21-t2v-1.3b", 24: "wan22-ti2v-5b"}[heads]
    config = WanTransformer3DModel.load_config(os.path.join(_configs(), shipped), subfolder="transformer")
    layers = 20 if size == "20 blocks" else config["num_layers"]
    with torch.device("meta"):
        model = WanTransformer3DModel.from_config({**config, "num_layers": layers})
    shapes = {k: tuple(v.shape) for k, v in wan_to_original(model.state_dict()).items()}
    header = Header(f"/models/diffusion_models/{name}", shapes, {}, {}, None)
    arch = identify(header)
    assert arch.key == key
    resolved = configs.resolve(arch, header)
    try:
        built = WanTransformer3DModel.load_config(resolved.arch.config_dir, subfolder="transformer")
        assert (built["num_attention_heads"], built["attention_head_dim"], built["ffn_dim"], built["num_layers"],
                built["text_dim"]) == (heads, 128, ffn, layers, 4096)
        assert resolved.source("transformer", "num_layers") == f"the denoiser's {layers} blocks.N"
        assert resolved.source("text_encoder", "d_model").startswith("the denoiser's text_embedding.0.weight")
        with torch.device("meta"):
            real = meta_component(resolved.arch.config_dir, "transformer")
        assert {k: tuple(v.shape) for k, v in real.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in model.state_dict().items()}
        encoder = meta_component(resolved.arch.config_dir, "text_encoder")
        assert encoder.shared.weight.shape == (256384, 4096) and len(encoder.encoder.block) == 24
        if size == "I2V 14B":  # CLIP ViT-H/14, ComfyUI's clip_vision_h: 1280 wide, 32 layers
            assert resolved.source("image_encoder", "hidden_size").startswith("the denoiser's img_emb.proj.0.weight")
            vision = meta_component(resolved.arch.config_dir, "image_encoder")
            assert vision.embeddings.patch_embedding.weight.shape == (1280, 3, 14, 14)
            assert len(vision.encoder.layers) == 32
    finally:
        resolved.cleanup()


def test_every_real_wan_row_is_read_off_the_shapes_above():
    from loradeck.core.families.wan.single_file import ARCHS

    tested = {"wan21-t2v-1.3b", "wan21-t2v-14b", "wan22-t2v-a14b", "wan22-ti2v-5b", "wan22-i2v-a14b",
              "wan21-i2v-14b"}
    assert {a.key for a in ARCHS if not a.tiny} == tested


def _configs() -> str:
    from loradeck.core.families.wan.single_file import CONFIGS

    return CONFIGS


def test_another_size_loads_from_files_with_a_config_folder_and_the_tokenizer_in_the_umt5_file(tmp_path):
    """A Wan of another width and depth (128 wide: one 128-wide head, 1 block): its config read off the weights, what
    the shapes cannot tell (the UMT5 and VAE configs of a small model) from a diffusers folder in config_folders, the
    tokenizer from the UMT5 file's spiece_model: the folder's frames."""
    from diffusers import WanPipeline

    from loradeck.core.families.wan.tiny import transformer as tiny_transformer
    from loradeck.core.models.tiny_parts import tiny_t5_tokenizer

    source = fresh("wan")
    config = dict(tiny_transformer().config)
    with torch.random.fork_rng():
        torch.manual_seed(7)
        wide = type(source.transformer).from_config({**config, "num_attention_heads": 1, "attention_head_dim": 128,
                                                     "num_layers": 1, "ffn_dim": 96}).eval()
    pipe = WanPipeline(vae=source.vae, transformer=wide, transformer_2=None, text_encoder=source.text_encoder,
                       tokenizer=source.tokenizer, scheduler=source.scheduler)
    folder = str(tmp_path / "diffusers" / "wan-128")
    pipe.save_pretrained(folder)
    models = tmp_path / "models"
    reference = tiny_t5_tokenizer()
    pieces = [reference.convert_ids_to_tokens(i) for i in range(len(reference))]
    _parts(pipe, models, encoder=umt5_to_comfy(pipe.text_encoder.state_dict(), _spiece(pieces)))
    path = save(wan_to_original(wide.state_dict()), str(models / "diffusion_models" / "wan_128.safetensors"))
    with pytest.raises(PipelineLoadError, match=r"needs text_encoder with d_model 32 \(text_embedding.0.weight"):
        _load(path)  # the shipped 1.3B config's UMT5 is 4096 wide: the shapes cannot tell the rest
    loaded = _load(path, config_folders=(folder,), files=LocalFiles.beside(path))
    assert loaded.transformer.config.num_attention_heads == 1 and loaded.transformer.config.num_layers == 1
    assert loaded.tokenizer("a photo of the cat").input_ids == reference("a photo of the cat").input_ids
    mine = load_folder(folder, torch.float32, CPU)
    mine.set_progress_bar_config(disable=True)
    assert (render(loaded) - render(mine)).abs().max() <= 1e-5


def test_a_width_off_wans_head_grid_is_refused_naming_the_value(tmp_path):
    state = wan_to_original(fresh("wan").transformer.state_dict())
    state = {k: (v[..., :24] if k == "head.modulation" else v) for k, v in state.items()}
    path = save(state, str(tmp_path / "models" / "diffusion_models" / "odd.safetensors"))
    with pytest.raises(PipelineLoadError, match=r"width 24 \(head.modulation \[1, 2, 24\]\) is not a multiple of "):
        _load(path)


@pytest.mark.parametrize("extra,what", [("img_emb.emb_pos", "first-last-frame"),
                                        ("vace_patch_embedding.weight", "Wan VACE")])
def test_variants_not_loaded_from_split_files_are_named(extra, what, tmp_path):
    state = wan_to_original(BUILTINS["tiny-wan-i2v"].tiny().transformer.state_dict())
    path = save({**state, extra: torch.zeros(1, 2, 32)},
                str(tmp_path / "models" / "diffusion_models" / "v.safetensors"))
    with pytest.raises(PipelineLoadError, match=what):
        _load(path)


# --- UMT5's tokenizer: the sentencepiece model ComfyUI's files carry ---------------------------------------------
def _spiece(pieces) -> bytes:
    """A Unigram sentencepiece model (protobuf, as sentencepiece writes it) of ``pieces``."""
    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    for i, piece in enumerate(pieces):
        entry = proto.pieces.add()
        entry.piece, entry.score, entry.type = piece, -float(i), {0: 3, 1: 3, 2: 2}.get(i, 1)
    proto.trainer_spec.model_type, proto.trainer_spec.unk_id = 1, 2
    proto.normalizer_spec.add_dummy_prefix = True
    return proto.SerializeToString()


def test_the_umt5_tokenizer_comes_from_the_encoder_files_spiece_model(tmp_path):
    from loradeck.core.models import tokenizers
    from loradeck.core.models.tiny_parts import tiny_t5_tokenizer

    reference = tiny_t5_tokenizer()
    pieces = [reference.convert_ids_to_tokens(i) for i in range(len(reference))]
    source = fresh("wan").text_encoder.state_dict()
    path = save(umt5_to_comfy(source, _spiece(pieces)), str(tmp_path / "umt5_xxl_tiny.safetensors"))
    tokenizer = tokenizers.in_file(path)
    for text in ("a photo of the cat", "lighthouse at night, xyz", ""):
        assert tokenizer(text).input_ids == reference(text).input_ids
    found, missing = tokenizers.resolve({"text_encoder": "umt5xxl"}, (), builtin=False,
                                        files={"text_encoder": path})
    assert not missing and found["tokenizer"]("the cat").input_ids == reference("the cat").input_ids
    assert tokenizers.in_file(save(umt5_to_comfy(source), str(tmp_path / "no_spiece.safetensors"))) is None
    _, missing = tokenizers.resolve({"text_encoder": "umt5xxl"}, (), builtin=False,
                                    files={"text_encoder": str(tmp_path / "no_spiece.safetensors")})
    assert missing == [tokenizers.FILES_NEEDED["umt5"]]


@pytest.mark.parametrize("data", [b"\x00\x01garbage", b"", _spiece(["a", "b", "c"]), b"\xff" * 64])
def test_a_hostile_spiece_model_is_refused_naming_the_file(data, tmp_path):
    from loradeck.core.models import tokenizers

    tensors = umt5_to_comfy(fresh("wan").text_encoder.state_dict(), data) if data else \
        {**umt5_to_comfy(fresh("wan").text_encoder.state_dict()), "spiece_model": torch.zeros(0, dtype=torch.uint8)}
    path = save(tensors, str(tmp_path / "umt5_bad.safetensors"))
    with pytest.raises(PipelineLoadError, match="umt5_bad.safetensors"):
        tokenizers.in_file(path)
