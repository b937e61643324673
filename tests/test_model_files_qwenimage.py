"""Qwen-Image's split files as ComfyUI users keep them: ``qwen_image*.safetensors`` / ``.gguf`` in diffusion_models/,
``qwen_2.5_vl_7b*.safetensors`` in text_encoders/, ``qwen_image_vae.safetensors`` (Wan 2.1 layout) in vae/.

The fixtures (tools/fixtures/generators/model_files/make_qwenimage_fixtures.py) are LoRA Deck's tiny Qwen-Image as
ComfyUI's own modules hold it (its transformer, its Qwen2.5-VL language model and vision tower, its WanVAE: strict
loads, their state dicts saved) and ComfyUI-GGUF's convert.py + gguf-py's quantizer; each must load back to the
tiny pipeline's weights (GGUF: gguf-py's dequantization) and give the diffusers folder's images.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from model_file_fixtures import bits_equal, fixture, load_error, lora_exact, node_loads, place_models, quantized_layers
from safetensors.torch import load_file
from test_family_qwenimage import _direct_edit, small_edits  # noqa: F401 (small_edits: a fixture)
from test_model_files import _fp8_layers, _scaled_fp8

from family_fixtures import PARAMS, fresh
from family_fixtures import render as render_with
from loradeck.core import Deck, PipelineLoadError
from loradeck.core.models.pipelines import load_folder
from loradeck.core.models.single_file import load_single_file
from original_layout import qwen25_vl_to_comfy, wan_vae_to_original

CPU = torch.device("cpu")
FAST = dataclasses.replace(PARAMS, steps=2)
KEY = "qwenimage"
DENOISER, TE, VAE = "qwenimage_tiny_bf16.safetensors", "qwenimage_tiny_te_bf16.safetensors", \
    "qwenimage_tiny_vae_bf16.safetensors"


def render(pipe) -> torch.Tensor:
    return render_with(KEY, pipe, FAST)


def _models(tmp_path, denoiser: str | dict, te: str | dict = TE, vae: str | dict | None = VAE) -> str:
    """``tmp_path/models`` with the denoiser (a fixture name, or tensors) in diffusion_models/, the text encoder and
    VAE (fixtures, or tensors) in text_encoders/ and vae/. Returns the denoiser's path."""
    return place_models(tmp_path, (("text_encoders", te, "qwen_2.5_vl_7b.safetensors"),
                                   ("vae", vae, "qwen_image_vae.safetensors"),
                                   ("diffusion_models", denoiser, "qwen_image_tiny.safetensors")))


def test_comfyuis_files_hold_the_tiny_qwenimage_in_its_layouts():
    """The fixtures ComfyUI's own modules wrote are the built-in tiny Qwen-Image (bf16) in ComfyUI's layouts, which
    are what this file's converters write (so the tests below that build files with them test ComfyUI's layout)."""
    pipe = fresh(KEY)
    for name, want in ((DENOISER, pipe.transformer.state_dict()),
                       (TE, qwen25_vl_to_comfy(pipe.text_encoder.state_dict())),
                       (VAE, wan_vae_to_original(pipe.vae.state_dict(), pipe.vae.config.num_res_blocks))):
        stored = load_file(fixture(name))
        assert stored.keys() == want.keys(), name
        assert all(bits_equal(v, want[k].to(torch.bfloat16)) for k, v in stored.items()), name


def test_bf16_split_files_give_the_diffusers_folders_images(tmp_path, use_models):
    """Load Diffusion Model lists ComfyUI's bf16 denoiser file and loads it with the Qwen2.5-VL encoder and the
    Wan-layout VAE found beside it by keys and shapes: the images of the diffusers folder of the same weights."""

    pipe = fresh(KEY)
    for component in (pipe.transformer, pipe.text_encoder, pipe.vae):
        component.to(torch.bfloat16)
    folder = str(tmp_path / "diffusers" / KEY)
    pipe.save_pretrained(folder)
    _models(tmp_path, DENOISER)
    loaded = node_loads(use_models, str(tmp_path / "models"), DENOISER)
    assert type(loaded).__name__ == "QwenImagePipeline"
    for name in ("transformer", "vae"):
        want = getattr(pipe, name).state_dict()
        assert all(torch.equal(v, want[k]) for k, v in getattr(loaded, name).state_dict().items()), name
    reference = Deck(load_folder(folder, torch.bfloat16, CPU)).pipe  # with the family's fix, as the node's
    assert (render(loaded) - render(reference)).abs().max() <= 2 / 255


@pytest.mark.parametrize("fmt,prefix", [("scaled", ""), ("comfy_quant", ""), ("plain", ""),
                                        ("comfy_quant", "model.diffusion_model.")])
def test_fp8_split_files_keep_fp8_weights_on_their_own_linears(fmt, prefix, tmp_path):
    """A Qwen-Image denoiser in ComfyUI's fp8 layouts (legacy scaled_fp8, per-layer comfy_quant, plain) with a
    Qwen2.5-VL encoder in the same layout: every fp8 block layer stays fp8 on the Linear of its own name (ComfyUI's
    files use diffusers' names) with exactly the dequantized rows, the encoder's weights equal the dequantization
    (dequantized at load), and (scaled) a LoRA on top equals it on the dequantized weights. Bare or under
    ``model.diffusion_model.``."""
    from lora_fixtures import save_family_lora

    source = fresh(KEY)
    denoiser = _scaled_fp8({prefix + k: v for k, v in source.transformer.state_dict().items()},
                           (prefix + "transformer_blocks.",), fmt)
    encoder = _scaled_fp8(qwen25_vl_to_comfy(source.text_encoder.state_dict()), ("model.layers.",), fmt)
    pipe = load_single_file(_models(tmp_path, denoiser, te=encoder), torch.float32, CPU)
    layers = {k.removeprefix(prefix): v for k, v in _fp8_layers(denoiser).items()}
    kept = quantized_layers(pipe.transformer)
    assert set(kept) == set(layers) and len(kept) == 28  # 14 Linear layers in each of the 2 blocks
    assert set(kept.values()) == {"fp8 e4m3fn" if fmt == "plain" else "fp8 e4m3fn scaled"}
    assert all(torch.equal(pipe.transformer.get_submodule(k).weight, v) for k, v in layers.items())
    te = dict(pipe.text_encoder.named_modules())
    encoder_layers = _fp8_layers(encoder)
    assert len(encoder_layers) >= 14 and not quantized_layers(pipe.text_encoder)
    for layer, dense in encoder_layers.items():
        assert torch.equal(te["model.language_model." + layer.removeprefix("model.")].weight, dense), layer
    if fmt == "scaled":
        lora = save_family_lora(KEY, str(tmp_path / "qwen-lora.safetensors"), seed=2)
        lora_exact(pipe, lora, render)


@pytest.mark.parametrize("name", ["qwenimage_tiny-Q8_0.gguf", "qwenimage_tiny-Q4_0.gguf"])
def test_gguf_denoisers_equal_gguf_py_and_take_loras_exactly(name, tmp_path):
    """ComfyUI-GGUF files of the tiny Qwen-Image (arch qwen_image) alone in diffusion_models/: every quantized tensor
    stays quantized on the Linear of its name with exactly gguf-py's dequantization, a LoRA on top equals it on the
    dequantized weights (unfused), and fusing is refused with the reason."""
    from lora_fixtures import save_family_lora

    kind = name.split("-")[1].split(".")[0]
    pipe = load_single_file(_models(tmp_path, name), torch.float32, CPU)
    reference = {k.removesuffix(".weight"): v for k, v in load_file(fixture(name.replace(
        ".gguf", ".expected.safetensors"))).items()}
    kept = quantized_layers(pipe.transformer)
    assert set(kept) == set(reference) and len(kept) >= 28 and set(kept.values()) == {f"GGUF {kind}"}
    assert all(torch.equal(pipe.transformer.get_submodule(k).weight, v) for k, v in reference.items())
    lora = save_family_lora(KEY, str(tmp_path / "qwen-lora.safetensors"), seed=2)
    lora_exact(pipe, lora, render, r"keeps its weight quantized \(GGUF .*nothing was fused")


def _variant():
    """A Qwen-Image of another depth and width than any shipped config: 3 blocks, 3 heads of 16, text width 32."""
    from diffusers import QwenImageTransformer2DModel

    from loradeck.core.models.tiny_parts import awaken

    pipe = fresh(KEY)
    torch.manual_seed(3)
    pipe.transformer = awaken(QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=3, attention_head_dim=16, num_attention_heads=3,
        joint_attention_dim=32, axes_dims_rope=(4, 6, 6)).eval(), seed=3)
    return pipe


def test_a_qwenimage_of_other_depth_and_width_loads_from_files_alone(tmp_path):
    variant = _variant()
    path = _models(tmp_path, variant.transformer.state_dict(), te=qwen25_vl_to_comfy(variant.text_encoder.state_dict()),
                   vae=wan_vae_to_original(variant.vae.state_dict(), 1))
    pipe = load_single_file(path, torch.float32, CPU)
    config = pipe.transformer.config
    assert (config.num_layers, config.num_attention_heads, config.attention_head_dim) == (3, 3, 16)
    want = variant.transformer.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in pipe.transformer.state_dict().items())
    assert (render(pipe) - render(variant)).abs().max() <= 2 / 255


def test_what_the_shapes_cannot_tell_comes_from_a_config_folder(tmp_path):
    """Heads of 32 (2 x 32 = 64 wide): the tiny config's RoPE axes (4, 6, 6) cannot fit them; the error names the
    value and where it came from, and a diffusers folder of the model gives them."""
    from diffusers import QwenImageTransformer2DModel

    pipe = fresh(KEY)
    torch.manual_seed(4)
    pipe.transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=32, num_attention_heads=2,
        joint_attention_dim=32, axes_dims_rope=(8, 12, 12)).eval()
    path = _models(tmp_path, pipe.transformer.state_dict())
    message = load_error(path)
    assert "is a tiny Qwen-Image (built-in) checkpoint" in message
    assert ("its attention heads are 32 wide (the denoiser's transformer_blocks.0.attn.norm_q.weight [32]), but "
            "axes_dims_rope [4, 6, 6] (the shipped tiny Qwen-Image (built-in) config) adds up to 16") in message
    folder = str(tmp_path / "diffusers" / "wide")
    pipe.save_pretrained(folder)
    loaded = load_single_file(path, torch.float32, CPU, config_folders=(folder,))
    assert list(loaded.transformer.config.axes_dims_rope) == [8, 12, 12]


@pytest.mark.parametrize("layers,heads", [(60, 24), (20, 16)])
def test_a_real_size_qwenimage_config_is_derived_from_its_shapes_on_the_meta_device(layers, heads):
    """Qwen-Image (60 blocks, 24 heads of 128) and a smaller variant: shapes only (meta tensors, no memory)."""
    from diffusers import QwenImageTransformer2DModel

    from loradeck.core.families import SINGLE_FILE_ARCHS
    from loradeck.core.models import configs
    from loradeck.core.models.arch import Header
    from loradeck.core.models.build import meta_component
    from loradeck.core.models.single_file import identify

    with torch.device("meta"):
        model = QwenImageTransformer2DModel(num_layers=layers, num_attention_heads=heads)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    header = Header("/models/diffusion_models/qwen_image_bf16.safetensors", shapes, {}, {}, None)
    arch = identify(header)
    assert arch.key == "qwen-image" and arch in SINGLE_FILE_ARCHS
    resolved = configs.resolve(arch, header)
    try:
        config = QwenImageTransformer2DModel.load_config(resolved.arch.config_dir, subfolder="transformer")
        assert (config["num_layers"], config["num_attention_heads"], config["attention_head_dim"],
                config["joint_attention_dim"], list(config["axes_dims_rope"])) == (layers, heads, 128, 3584,
                                                                                  [16, 56, 56])
        assert resolved.source("transformer", "num_layers") == f"the denoiser's {layers} transformer_blocks"
        built = meta_component(resolved.arch.config_dir, "transformer")
        assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == shapes
        text = meta_component(resolved.arch.config_dir, "text_encoder")
        assert text.model.language_model.embed_tokens.weight.shape == (152064, 3584)
        assert meta_component(resolved.arch.config_dir, "vae").decoder.conv_in.weight.shape[:2] == (384, 16)
    finally:
        resolved.cleanup()


def test_missing_parts_are_named_in_one_sentence_each(tmp_path):
    path = _models(tmp_path, DENOISER, te="", vae=None)
    message = load_error(path)
    assert "'qwenimage_tiny_bf16.safetensors' is a tiny Qwen-Image (built-in) checkpoint" in message
    assert "Qwen2.5-VL-7B text encoder (text_encoder: width 32, 2 layers;" in message
    assert "put qwen_2.5_vl_7b.safetensors" in message
    assert "a VAE (16 latent channels; z_dim from the denoiser's proj_out.weight [64, 32]: 2 x 2 patches)" in message
    assert "put qwen_image_vae.safetensors (the Qwen-Image VAE, Wan 2.1 layout) in models/vae" in message


def test_layered_files_are_named_not_loaded(tmp_path):
    from single_file_fixtures import save

    sd = {k: v.to(torch.bfloat16) for k, v in fresh(KEY).transformer.state_dict().items()}
    path = save({**sd, "time_text_embed.addition_t_embedding.weight": torch.zeros(1, 32)},
                str(tmp_path / "diffusion_models" / "qwen_image_layered.safetensors"))
    with pytest.raises(PipelineLoadError, match="looks like a Qwen-Image-Layered model"):
        load_single_file(path, torch.float32, CPU)


@pytest.mark.usefixtures("small_edits")
def test_an_edit_file_edits_as_the_edit_pipeline_of_the_same_weights(tmp_path):
    """Qwen-Image-Edit files have Qwen-Image's keys: the name decides (ComfyUI's own names: qwen_image_edit_2509_*),
    and the pipeline is diffusers' Edit Plus class with the Edit repos' processor over the tokenizer; its edit of an
    image equals the built-in tiny edit pipeline's (same weights, bf16)."""
    from loradeck.core.families.qwenimage import tiny

    path = _models(tmp_path, DENOISER)
    edit_path = os.path.join(os.path.dirname(path), "qwen_image_edit_2509_tiny_bf16.safetensors")
    os.rename(path, edit_path)
    loaded = load_single_file(edit_path, torch.bfloat16, CPU)
    assert type(loaded).__name__ == "QwenImageEditPlusPipeline" and type(loaded.processor).__name__ == \
        "Qwen2VLProcessor"
    reference = tiny.build_edit(0)  # in bf16 as from_pretrained loads it: weights bf16, rotary buffers float32
    for component in (reference.transformer, reference.text_encoder, reference.vae):
        for param in component.parameters():
            param.data = param.data.to(torch.bfloat16)
    for name in ("transformer", "vae"):
        want = getattr(reference, name).state_dict()
        assert all(torch.equal(v, want[k]) for k, v in getattr(loaded, name).state_dict().items()), name
    loaded.set_progress_bar_config(disable=True)
    reference.set_progress_bar_config(disable=True)
    assert (_direct_edit(loaded) - _direct_edit(reference)).abs().max() <= 2 / 255


@pytest.mark.parametrize("name,marker,want,zero_cond_t", [
    ("qwen_image_edit_bf16.safetensors", False, "QwenImageEditPipeline", None),
    ("qwen_image_edit_2511_bf16.safetensors", True, "QwenImageEditPlusPipeline", True),
    ("some_finetune.safetensors", True, "QwenImageEditPlusPipeline", True),  # 2511's own marker
    ("qwen_image_bf16.safetensors", False, "QwenImagePipeline", None),
])
def test_which_qwen_image_class_a_file_loads_in(name, marker, want, zero_cond_t, tmp_path):
    """Real-size files (shapes only): the edit rows by name, Edit-2511 by its marker (zero_cond_t on)."""
    from diffusers import QwenImageTransformer2DModel

    from loradeck.core.models import configs
    from loradeck.core.models.arch import Header
    from loradeck.core.models.single_file import identify

    with torch.device("meta"):
        model = QwenImageTransformer2DModel()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if marker:
        shapes["__index_timestep_zero__"] = (0,)
    header = Header(f"/models/diffusion_models/{name}", shapes, {}, {}, None)
    resolved = configs.resolve(identify(header), header)
    try:
        with open(os.path.join(resolved.arch.config_dir, "model_index.json"), encoding="utf-8") as f:
            assert __import__("json").load(f)["_class_name"] == want
        config = QwenImageTransformer2DModel.load_config(resolved.arch.config_dir, subfolder="transformer")
        assert config.get("zero_cond_t") == zero_cond_t
    finally:
        resolved.cleanup()


@pytest.mark.skipif(not os.environ.get("COMFYUI_ROOT"), reason="needs a ComfyUI checkout (COMFYUI_ROOT)")
def test_comfyuis_bundled_qwen25_tokenizer_serves_qwen_image_and_krea2():
    """The real tokenizer files users have: ComfyUI's comfy/text_encoders/qwen25_tokenizer, found for the Qwen2.5-VL
    and Qwen3-VL encoder kinds, tokenizes each pipeline's prompt template as the real vocab does: the system prefix is
    exactly the tokens the pipelines drop (34; Krea 2's assistant suffix 5)."""
    from loradeck.core.families.krea2.tiny import PREFIX_TOKENS, SUFFIX_TOKENS
    from loradeck.core.families.krea2.tiny import TEMPLATE as KREA2_TEMPLATE
    from loradeck.core.families.qwenimage.templates import T2I_TEMPLATE
    from loradeck.core.families.qwenimage.tiny import DROPPED
    from loradeck.core.models import tokenizers

    found, missing = tokenizers.resolve({"text_encoder": "qwen25_vl_7b", "text_encoder_2": "qwen3_vl_4b"},
                                        [os.environ["COMFYUI_ROOT"]], builtin=False)
    assert not missing and len(found["tokenizer"]) > 151000
    tok = found["tokenizer"]
    assert len(tok(T2I_TEMPLATE.split("{}")[0]).input_ids) == DROPPED["t2i"]
    prefix, suffix = KREA2_TEMPLATE.split("{}")
    assert (len(tok(prefix).input_ids), len(tok(suffix).input_ids)) == (PREFIX_TOKENS, SUFFIX_TOKENS)


def test_an_all_in_one_checkpoint_in_comfyuis_layout_loads_every_part_from_itself(tmp_path):
    """ComfyUI's checkpoint layout (its CheckpointSave): the transformer under model.diffusion_model., the Qwen2.5-VL
    under text_encoders.qwen25_7b.transformer., the Wan-layout VAE under first_stage_model.; nothing looked for
    elsewhere, every weight the tiny pipeline's."""
    from single_file_fixtures import save

    pipe = fresh(KEY)
    tensors = {**{"model.diffusion_model." + k: v for k, v in pipe.transformer.state_dict().items()},
               **qwen25_vl_to_comfy(pipe.text_encoder.state_dict(), "text_encoders.qwen25_7b.transformer."),
               **{"first_stage_model." + k: v for k, v in wan_vae_to_original(pipe.vae.state_dict(), 1).items()}}
    loaded = load_single_file(save(tensors, str(tmp_path / "checkpoints" / "qwen_image_aio.safetensors")),
                              torch.float32, CPU)
    for name in ("transformer", "vae"):
        want = getattr(pipe, name).state_dict()
        assert all(torch.equal(v, want[k]) for k, v in getattr(loaded, name).state_dict().items()), name
    got, want = loaded.text_encoder.state_dict(), pipe.text_encoder.state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items() if k != "lm_head.weight")
