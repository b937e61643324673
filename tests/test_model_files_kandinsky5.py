"""Kandinsky 5.0 Image Lite's split files as ComfyUI users keep them: ``kandinsky5lite_t2i*.safetensors`` / ``.gguf`` in
diffusion_models/, ``qwen_2.5_vl_7b*.safetensors`` and ``clip_l.safetensors`` in text_encoders/, the FLUX.1
``ae.safetensors`` in vae/.

The fixtures (tools/fixtures/generators/model_files/make_kandinsky5_fixtures.py) are LoRA Deck's tiny Kandinsky 5 as
ComfyUI's own modules hold it (its Kandinsky5 transformer, its Qwen2.5-VL language model and vision tower, its CLIP-L,
its FLUX.1-layout Encoder / Decoder: loads of every weight, their state dicts saved) and ComfyUI-GGUF's convert.py +
gguf-py's quantizer; each must load back to the tiny pipeline's weights (GGUF: gguf-py's dequantization) and give
the diffusers folder's images.
"""

from __future__ import annotations

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
from loradeck.core.families.kandinsky5.tiny import TINY_SIZE
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import load_single_file
from original_layout import clip_to_ldm, qwen25_vl_to_comfy, vae_to_ldm

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)
KEY = "kandinsky5"
DENOISER, TE, CLIP, VAE = ("kandinsky5_tiny_bf16.safetensors", "kandinsky5_tiny_te_bf16.safetensors",
                           "kandinsky5_tiny_clip_l_bf16.safetensors", "kandinsky5_tiny_vae_bf16.safetensors")
BLOCKS = ("text_transformer_blocks.", "visual_transformer_blocks.")
LINEARS = 29  # the tiny model's 1 text + 2 visual blocks: 7 + 2 x 11 Linear layers (their modulations included)


def render(pipe) -> torch.Tensor:
    """The tiny size is a pipeline attribute (``resolutions``) that no file or saved folder holds: a pipeline loaded
    from either renders at its trained sizes, so both sides of a comparison get the tiny one."""
    pipe.resolutions = [TINY_SIZE, *pipe.resolutions]
    return render_with(KEY, pipe, FAST)


def _clip(sd: dict) -> dict:
    return {k: v for k, v in clip_to_ldm(sd, "").items() if not k.endswith("position_ids")}


def _models(tmp_path, denoiser: str | dict, te: str | dict = TE, clip: str | dict | None = CLIP,
            vae: str | dict | None = VAE) -> str:
    """``tmp_path/models`` with the denoiser (a fixture name, or tensors) in diffusion_models/, the text encoders and
    VAE (fixtures, or tensors) in text_encoders/ and vae/. Returns the denoiser's path."""
    return place_models(tmp_path, (("text_encoders", te, "qwen_2.5_vl_7b.safetensors"),
                                   ("text_encoders", clip, "clip_l.safetensors"), ("vae", vae, "ae.safetensors"),
                                   ("diffusion_models", denoiser, "kandinsky5lite_t2i_tiny.safetensors")))


def test_comfyuis_files_hold_the_tiny_kandinsky5_in_its_layouts():
    """The fixtures ComfyUI's own modules wrote are the built-in tiny Kandinsky 5 (bf16) in ComfyUI's layouts, which
    are what this file's converters write (so the tests below that build files with them test ComfyUI's layout):
    the transformer's names are diffusers' own."""
    pipe = fresh(KEY)
    for name, want in ((DENOISER, pipe.transformer.state_dict()),
                       (TE, qwen25_vl_to_comfy(pipe.text_encoder.state_dict())),
                       (CLIP, _clip(pipe.text_encoder_2.state_dict())), (VAE, vae_to_ldm(pipe.vae.state_dict(), ""))):
        stored = load_file(fixture(name))
        assert stored.keys() == want.keys(), name
        assert all(bits_equal(v, want[k].to(torch.bfloat16)) for k, v in stored.items()), name


@pytest.mark.skipif(not os.environ.get("COMFYUI_ROOT"), reason="needs a ComfyUI checkout (COMFYUI_ROOT)")
def test_comfyuis_kandinsky5_module_and_diffusers_hold_the_same_state_dict():
    """The name table is the identity: ComfyUI 0.8.0's own Kandinsky5 (comfy/ldm/kandinsky5/model.py), configured by
    its detect_unet_config from the fixture, and diffusers' Kandinsky5Transformer3DModel each take the other's state
    dict by strict load (the same keys and shapes), at the tiny size and at Kandinsky 5.0 Image Lite's (meta)."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "fixtures", "generators", "model_files"))
    import comfy_env

    comfy_env.setup(os.environ["COMFYUI_ROOT"])
    import comfy.model_detection
    import comfy.ops
    from comfy.ldm.kandinsky5.model import Kandinsky5
    from diffusers import Kandinsky5Transformer3DModel

    from loradeck.core.models.build import meta_component

    stored = load_file(fixture(DENOISER))
    config = comfy.model_detection.detect_unet_config(stored, "")
    assert config["image_model"] == "kandinsky5" and config["num_visual_blocks"] == 2
    tiny = fresh(KEY).transformer.config
    comfy_model = Kandinsky5(**{k: v for k, v in config.items() if k != "image_model"}, axes_dims=tuple(tiny.axes_dims),
                             in_text_dim=tiny.in_text_dim, in_text_dim2=tiny.in_text_dim2,
                             operations=comfy.ops.disable_weight_init)
    comfy_model.load_state_dict(stored, strict=True)
    Kandinsky5Transformer3DModel.from_config(tiny).load_state_dict(comfy_model.state_dict(), strict=True)
    from loradeck.core.families.kandinsky5.single_file import CONFIGS

    real = meta_component(os.path.join(CONFIGS, "kandinsky5-lite"), "transformer")
    shapes = {k: v.shape for k, v in real.state_dict().items()}
    detected = comfy.model_detection.detect_unet_config(real.state_dict(), "")
    with torch.device("meta"):
        comfy_real = Kandinsky5(**{k: v for k, v in detected.items() if k != "image_model"},
                                operations=comfy.ops.disable_weight_init)
    assert {k: v.shape for k, v in comfy_real.state_dict().items()} == shapes
    assert (detected["model_dim"], detected["axes_dims"], detected["num_visual_blocks"]) == (2560, (32, 48, 48), 50)


def test_bf16_split_files_give_the_diffusers_folders_images(tmp_path, use_models):
    """Load Diffusion Model lists ComfyUI's bf16 denoiser file and loads it with the Qwen2.5-VL and CLIP-L encoders
    and the FLUX.1-layout VAE found beside it by keys and shapes: the images of the diffusers folder of the same
    weights."""

    pipe = fresh(KEY)
    for component in (pipe.transformer, pipe.text_encoder, pipe.text_encoder_2, pipe.vae):
        component.to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / KEY)
    pipe.save_pretrained(folder)
    _models(tmp_path, DENOISER)
    loaded = node_loads(use_models, str(tmp_path / "models"), DENOISER)
    assert type(loaded).__name__ == "Kandinsky5T2IPipeline"
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe  # with the family's fix, as the node's
    for name in ("transformer", "vae", "text_encoder_2"):
        want = getattr(reference, name).state_dict()
        got = getattr(loaded, name).state_dict()
        assert got.keys() == want.keys() and all(bits_equal(v, want[k]) for k, v in got.items()), name
    got, want = loaded.text_encoder.state_dict(), reference.text_encoder.state_dict()
    # ComfyUI's Qwen2.5-VL files hold no lm_head, whose logits the pipeline never reads (models/build.py)
    assert all(torch.equal(got[k], v) for k, v in want.items() if k != "lm_head.weight"), "text_encoder"
    assert (render(loaded) - render(reference)).abs().max() <= 2 / 255


@pytest.mark.parametrize("fmt,prefix", [("scaled", ""), ("comfy_quant", ""), ("plain", ""),
                                        ("comfy_quant", "model.diffusion_model.")])
def test_fp8_split_files_keep_fp8_weights_on_their_own_linears(fmt, prefix, tmp_path):
    """A Kandinsky 5 denoiser in ComfyUI's fp8 layouts (legacy scaled_fp8, per-layer comfy_quant, plain) with a
    Qwen2.5-VL encoder in the same layout: every fp8 block layer stays fp8 on the Linear of its own name with exactly
    the dequantized weight, the encoder's weights equal the dequantization (dequantized at load), and (scaled) a LoRA
    on top equals it on the dequantized weights. Bare or under ``model.diffusion_model.``."""
    from lora_fixtures import save_family_lora

    source = fresh(KEY)
    denoiser = _scaled_fp8({prefix + k: v for k, v in source.transformer.state_dict().items()},
                           tuple(prefix + b for b in BLOCKS), fmt)
    encoder = _scaled_fp8(qwen25_vl_to_comfy(source.text_encoder.state_dict()), ("model.layers.",), fmt)
    pipe = load_single_file(_models(tmp_path, denoiser, te=encoder), torch.float32, CPU)
    layers = {k.removeprefix(prefix): v for k, v in _fp8_layers(denoiser).items()}
    kept = quantized_layers(pipe.transformer)
    assert set(kept) == set(layers) and len(kept) == LINEARS
    assert set(kept.values()) == {"fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"}
    assert all(torch.equal(pipe.transformer.get_submodule(k).weight, v) for k, v in layers.items())
    te = dict(pipe.text_encoder.named_modules())
    encoder_layers = _fp8_layers(encoder)
    assert len(encoder_layers) >= 14 and not quantized_layers(pipe.text_encoder)
    for layer, dense in encoder_layers.items():
        assert torch.equal(te["model.language_model." + layer.removeprefix("model.")].weight, dense), layer
    if fmt == "scaled":
        lora = save_family_lora(KEY, str(tmp_path / "k5-lora.safetensors"), seed=2)
        lora_exact(pipe, lora, render, r"keeps its weight quantized \(fp8 .*nothing was fused")


def test_a_scaled_fp8_clip_l_loads_dequantized(tmp_path):
    """A CLIP-L in ComfyUI's scaled fp8 layout (as clip_l_fp8 files): found by its shapes, its weights the
    dequantization."""
    source = fresh(KEY)
    clip = _scaled_fp8(_clip(source.text_encoder_2.state_dict()), ("text_model.encoder.",), "scaled")
    pipe = load_single_file(_models(tmp_path, DENOISER, clip=clip), torch.float32, CPU)
    modules = dict(pipe.text_encoder_2.named_modules())
    layers = _fp8_layers(clip)
    assert len(layers) == 12 and not quantized_layers(pipe.text_encoder_2)
    for layer, dense in layers.items():  # transformers 5's CLIPTextModel has no text_model level
        assert torch.equal(modules.get(layer, modules.get(layer.removeprefix("text_model."))).weight, dense), layer


@pytest.mark.parametrize("name", ["kandinsky5_tiny-Q8_0.gguf", "kandinsky5_tiny-Q4_0.gguf"])
def test_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    """ComfyUI-GGUF files of the tiny Kandinsky 5 alone in diffusion_models/: every quantized tensor stays quantized
    on the Linear of its name with exactly gguf-py's dequantization, a LoRA on top equals it on the dequantized
    weights (unfused), and fusing is refused with the reason."""
    from lora_fixtures import save_family_lora

    kind = name.split("-")[1].split(".")[0]
    pipe = load_single_file(_models(tmp_path, name), torch.float32, CPU)
    reference = {k.removesuffix(".weight"): v for k, v in load_file(fixture(name.replace(
        ".gguf", ".expected.safetensors"))).items()}
    kept = quantized_layers(pipe.transformer)
    # the tiny modulations' 16 inputs are no whole Q8_0 / Q4_0 block: F16 (llama-quantize's fallback), dense
    assert set(kept) == set(reference) and len(kept) == LINEARS - 3 and set(kept.values()) == {f"GGUF {kind}"}
    assert all(torch.equal(pipe.transformer.get_submodule(k).weight, v) for k, v in reference.items())
    lora = save_family_lora(KEY, str(tmp_path / "k5-lora.safetensors"), seed=2)
    lora_exact(pipe, lora, render, r"keeps its weight quantized \(GGUF .*nothing was fused")


def _variant(**sizes):
    """A Kandinsky 5 of another depth and width than any shipped config (default: 2 text + 3 visual blocks, width
    48 = 3 heads of 16, FFN 96, time width 24)."""
    from diffusers import Kandinsky5Transformer3DModel

    from loradeck.core.models.tiny_parts import awaken

    pipe = fresh(KEY)
    torch.manual_seed(3)
    config = {**dict(pipe.transformer.config), "model_dim": 48, "ff_dim": 96, "time_dim": 24, "num_text_blocks": 2,
              "num_visual_blocks": 3, **sizes}
    pipe.transformer = awaken(Kandinsky5Transformer3DModel.from_config(config).eval(), seed=3)
    return pipe


def _files(tmp_path, pipe) -> str:
    """The whole (float32) ``pipe`` as split files in ComfyUI's layouts."""
    return _models(tmp_path, pipe.transformer.state_dict(), te=qwen25_vl_to_comfy(pipe.text_encoder.state_dict()),
                   clip=_clip(pipe.text_encoder_2.state_dict()), vae=vae_to_ldm(pipe.vae.state_dict(), ""))


def test_a_kandinsky5_of_other_depth_and_width_loads_from_files_alone(tmp_path):
    variant = _variant()
    pipe = load_single_file(_files(tmp_path, variant), torch.float32, CPU)
    config = pipe.transformer.config
    assert (config.model_dim, config.ff_dim, config.time_dim, config.num_text_blocks, config.num_visual_blocks) == \
        (48, 96, 24, 2, 3)
    want = variant.transformer.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in pipe.transformer.state_dict().items())
    assert (render(pipe) - render(variant)).abs().max() <= 2 / 255


def test_what_the_shapes_cannot_tell_comes_from_a_config_folder(tmp_path):
    """Heads of 32 (width 64 = 2 heads): the tiny config's RoPE axes (4, 6, 6) cannot fit them; the error names the
    value, and a diffusers folder of the model gives them."""
    pipe = _variant(model_dim=64, axes_dims=(8, 12, 12), num_text_blocks=1, num_visual_blocks=2)
    path = _files(tmp_path, pipe)
    message = load_error(path)
    assert "kandinsky5lite_t2i_tiny.safetensors" in message
    assert ("its attention heads are 32 wide (the denoiser's visual_transformer_blocks.0.cross_attention.key_norm"
            ".weight [32]), but axes_dims [4, 6, 6] of its config adds up to 16") in message
    folder = str(tmp_path / "diffusers" / "wide")
    pipe.save_pretrained(folder)
    loaded = load_single_file(path, torch.float32, CPU, config_folders=(folder,))
    assert list(loaded.transformer.config.axes_dims) == [8, 12, 12]
    assert (render(loaded) - render(pipe)).abs().max() <= 2 / 255


@pytest.mark.parametrize("visual,model_dim", [(50, 2560), (20, 1024)])
def test_a_real_size_kandinsky5_config_is_derived_from_its_shapes_on_the_meta_device(visual, model_dim):
    """Kandinsky 5.0 Image Lite (2 + 50 blocks, width 2560) and a smaller variant: shapes only (meta tensors)."""
    from diffusers import Kandinsky5Transformer3DModel

    from loradeck.core.families import SINGLE_FILE_ARCHS
    from loradeck.core.models import configs
    from loradeck.core.models.arch import Header
    from loradeck.core.models.build import meta_component
    from loradeck.core.models.single_file import identify

    with torch.device("meta"):
        model = Kandinsky5Transformer3DModel(
            in_visual_dim=16, in_text_dim=3584, in_text_dim2=768, time_dim=512, out_visual_dim=16, model_dim=model_dim,
            ff_dim=4 * model_dim, num_text_blocks=2, num_visual_blocks=visual, axes_dims=(32, 48, 48),
            visual_cond=False, attention_type="regular")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    header = Header("/models/diffusion_models/kandinsky5lite_t2i.safetensors", shapes, {}, {}, None)
    arch = identify(header)
    assert arch.key == "kandinsky5-lite" and arch in SINGLE_FILE_ARCHS
    resolved = configs.resolve(arch, header)
    try:
        config = Kandinsky5Transformer3DModel.load_config(resolved.arch.config_dir, subfolder="transformer")
        assert (config["num_visual_blocks"], config["model_dim"], config["ff_dim"], config["in_text_dim"],
                list(config["axes_dims"])) == (visual, model_dim, 4 * model_dim, 3584, [32, 48, 48])
        assert resolved.source("transformer", "num_visual_blocks") == \
            f"the denoiser's {visual} visual_transformer_blocks"
        built = meta_component(resolved.arch.config_dir, "transformer")
        assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == shapes
        text = meta_component(resolved.arch.config_dir, "text_encoder")
        assert text.model.language_model.embed_tokens.weight.shape == (152064, 3584)
        clip = meta_component(resolved.arch.config_dir, "text_encoder_2")
        assert getattr(clip, "text_model", clip).embeddings.token_embedding.weight.shape == (49408, 768)
        vae = meta_component(resolved.arch.config_dir, "vae")
        assert vae.decoder.conv_in.weight.shape[:2] == (512, 16) and vae.decoder.mid_block.attentions
    finally:
        resolved.cleanup()


def test_missing_parts_are_named_in_one_sentence_each(tmp_path):
    path = _models(tmp_path, DENOISER, te="", clip=None, vae=None)
    message = load_error(path)
    assert "'kandinsky5_tiny_bf16.safetensors' is a tiny Kandinsky 5 (built-in) checkpoint" in message
    assert "Qwen2.5-VL-7B text encoder (text_encoder: width 32, 2 layers;" in message
    assert "put qwen_2.5_vl_7b.safetensors" in message
    assert "CLIP-L text encoder (text_encoder_2: width 32" in message and "put clip_l.safetensors" in message
    assert "a VAE (16 latent channels; latent_channels from the denoiser's visual_embeddings.in_layer.weight " \
           "[32, 64]: 1 x 2 x 2 patches)" in message
    assert "put ae.safetensors (the FLUX.1 VAE) in models/vae" in message


def test_video_and_edit_files_are_named_not_loaded(tmp_path):
    """Kandinsky 5.0 Video (Lite, Pro) and the image-editing model: the same keys with a visual condition
    (visual_embeddings.in_layer takes 4 x (2 x 16 + 1) = 132 inputs)."""
    from single_file_fixtures import save

    sd = {k: v.to(torch.bfloat16) for k, v in fresh(KEY).transformer.state_dict().items()}
    sd["visual_embeddings.in_layer.weight"] = torch.zeros(32, 132, dtype=torch.bfloat16)
    path = save(sd, str(tmp_path / "diffusion_models" / "kandinsky5lite_t2v_sft_5s.safetensors"))
    with pytest.raises(PipelineLoadError, match="looks like a Kandinsky 5.0 Video or image-editing model"):
        load_single_file(path, torch.float32, CPU)


def test_an_all_in_one_checkpoint_in_comfyuis_layout_loads_every_part_from_itself(tmp_path):
    """ComfyUI's checkpoint layout (its CheckpointSave for Kandinsky 5: the transformer under model.diffusion_model.,
    the Qwen2.5-VL under text_encoders.qwen25_7b.transformer., CLIP-L under text_encoders.clip_l.transformer., the
    VAE under vae.): nothing looked for elsewhere, every weight the tiny pipeline's."""
    from single_file_fixtures import save

    pipe = fresh(KEY)
    tensors = {**{"model.diffusion_model." + k: v for k, v in pipe.transformer.state_dict().items()},
               **qwen25_vl_to_comfy(pipe.text_encoder.state_dict(), "text_encoders.qwen25_7b.transformer."),
               **{"text_encoders.clip_l.transformer." + k: v
                  for k, v in _clip(pipe.text_encoder_2.state_dict()).items()},
               **vae_to_ldm(pipe.vae.state_dict(), "vae.")}
    loaded = load_single_file(save(tensors, str(tmp_path / "checkpoints" / "kandinsky5_aio.safetensors")),
                              torch.float32, CPU)
    for name in ("transformer", "vae", "text_encoder_2"):
        want = getattr(pipe, name).state_dict()
        assert all(torch.equal(v, want[k]) for k, v in getattr(loaded, name).state_dict().items()), name
    got, want = loaded.text_encoder.state_dict(), pipe.text_encoder.state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items() if k != "lm_head.weight")
