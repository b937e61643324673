"""Single-file checkpoints in the original layouts load offline with no diffusers folder.

The tiny models are written in SD1 (LDM), SDXL (SGM), SD3 (SAI) and Flux (BFL) layouts by the inverse of
diffusers' conversion (original_layout.py); loading them back must give every weight of the original model
and the same images. Real architectures are checked on the meta device (no weights): their shipped
configs, key markers and diffusers' own converters agree.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest
import torch
from safetensors.torch import save_file

from family_fixtures import PARAMS, fresh
from family_fixtures import render as render_with
from loradeck.core import PipelineLoadError, open_pipeline
from loradeck.core.families import SINGLE_FILE_ARCHS as ARCHS
from loradeck.core.models.arch import Header, detect
from loradeck.core.models.single_file import LocalFiles, identify, load_single_file, plan
from loradeck.core.settings import TOKENIZERS_ENV
from single_file_fixtures import all_in_one, split

KEYS = ["sd1", "sdxl", "sd3", "flux", "zimage"]
BY_KEY = {a.key: a for a in ARCHS}
CPU = torch.device("cpu")
NODE = "LoadPipeline|LoRADeck"


FAST = dataclasses.replace(PARAMS, steps=2)


def render(key: str, pipe) -> torch.Tensor:
    return render_with(key, pipe, FAST)


def _reference(key: str):
    """What the checkpoint means: the tiny model, except that SD3's CLIP-L pooled output is unprojected
    (diffusers' single-file rule, ComfyUI's too: the CLIP-L projection loads as the identity)."""
    pipe = fresh(key)
    if key == "sd3":
        with torch.no_grad():
            pipe.text_encoder.text_projection.weight.copy_(torch.eye(pipe.text_encoder.config.projection_dim))
    return pipe


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """models/checkpoints with an all-in-one file per family (no diffusers folder anywhere), and one models
    folder per transformer-only variant with its separate text encoders and VAE."""
    root = tmp_path_factory.mktemp("single_file_models")
    out = {"root": str(root)}
    for key in KEYS:
        out[key] = all_in_one(key, fresh(key), str(root / "all" / "checkpoints" / f"tiny-{key}.safetensors"))
    for key in ("sd3", "flux", "zimage"):
        folder = root / f"{key}_split"
        out[f"{key}-split"] = str(folder / "checkpoints" / split(key, fresh(key), str(folder)))
    return out


@pytest.fixture(scope="module")
def images():
    """The original tiny pipelines' images, rendered once."""
    return {key: render(key, _reference(key)) for key in KEYS}


def _weights(pipe) -> dict[str, torch.Tensor]:
    return {f"{c}.{n}": t for c, m in pipe.components.items() if isinstance(m, torch.nn.Module)
            for n, t in m.state_dict().items()}


@pytest.mark.parametrize("variant", KEYS + ["sd3-split", "flux-split", "zimage-split"])
def test_round_trip_gives_every_original_weight(variant, models):
    key = variant.split("-")[0]
    loaded = load_single_file(models[variant], torch.float32, CPU)
    original, got = _weights(_reference(key)), _weights(loaded)
    assert sorted(got) == sorted(original)
    different = [name for name, tensor in original.items() if not torch.equal(got[name], tensor)]
    assert not different, different[:5]
    assert type(loaded) is type(fresh(key))


def test_diffusers_pipeline_level_from_single_file_reads_the_shipped_config(models):
    from diffusers import StableDiffusionPipeline

    from loradeck.core.models.tiny_parts import tiny_clip_tokenizer

    pipe = StableDiffusionPipeline.from_single_file(models["sd1"], config=BY_KEY["tiny-sd"].config_dir,
                                                    tokenizer=tiny_clip_tokenizer(), local_files_only=True)
    original = _weights(fresh("sd1"))
    assert all(torch.equal(t, original[n]) for n, t in _weights(pipe).items())


@pytest.mark.parametrize("variant", KEYS + ["sd3-split", "flux-split", "zimage-split"])
def test_load_pipeline_node_loads_it_offline_with_the_same_images(variant, models, images, use_models):
    from loradeck.nodes import NODE_CLASS_MAPPINGS, host

    key = variant.split("-")[0]
    path = models[variant]
    root = os.path.dirname(os.path.dirname(path))
    assert not os.path.exists(os.path.join(root, "diffusers"))
    use_models(root)
    name = os.path.basename(path)
    assert name in host.diffusers_models()
    handle = NODE_CLASS_MAPPINGS[NODE]().load(name, "float32")[0]
    assert handle.owner.family.key == key
    assert (render(key, handle.owner.pipe) - images[key]).abs().max() <= 2 / 255


def test_python_api_finds_the_separate_files_beside_the_checkpoint(models):
    handle = open_pipeline(models["flux-split"], "float32")  # models/checkpoints -> models/{text_encoders,clip,vae}
    original = _weights(fresh("flux"))
    assert all(torch.equal(t, original[n]) for n, t in _weights(handle.owner.pipe).items())


def test_missing_text_encoder_and_vae_are_named_with_where_to_put_them(models, tmp_path):
    shutil.copytree(os.path.dirname(os.path.dirname(models["flux-split"])), tmp_path / "models")
    os.remove(tmp_path / "models" / "text_encoders" / "t5xxl_tiny.safetensors")
    shutil.rmtree(tmp_path / "models" / "vae")
    path = str(tmp_path / "models" / "checkpoints" / os.path.basename(models["flux-split"]))
    with pytest.raises(PipelineLoadError) as err:
        load_single_file(path, torch.float32, CPU)
    message = str(err.value)
    assert "tiny Flux" in message and "T5-XXL text encoder (text_encoder_2: width 32, 2 layers;" in message
    # which config value decided each: the denoiser's own shapes where they tell, else the shipped config
    assert "d_model from the denoiser's txt_in.weight [32, 32], num_layers from the shipped tiny Flux" in message
    assert "t5xxl_fp16.safetensors" in message and "models/text_encoders" in message
    assert "it needs a VAE (1 latent channel; latent_channels from the denoiser's img_in.weight [32, 4]" in message
    assert "ae.safetensors in models/vae" in message
    assert "tokenizer" not in message  # the tiny architectures need no tokenizer files


def test_text_encoder_files_are_matched_by_shape_not_name(models, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(os.path.dirname(os.path.dirname(models["sd3-split"])), folder)
    clip_g = folder / "text_encoders" / "clip_g.safetensors"
    from safetensors.torch import load_file

    wider = {k: torch.zeros(*v.shape[:-1], 48) if v.shape[-1] == 32 else v for k, v in load_file(clip_g).items()}
    save_file(wider, str(clip_g))  # named clip_g, but 48 wide: not this model's
    with pytest.raises(PipelineLoadError) as err:
        load_single_file(str(folder / "checkpoints" / os.path.basename(models["sd3-split"])), torch.float32, CPU)
    message = str(err.value)
    assert "OpenCLIP-G text encoder (text_encoder_2: width 32, 2 layers;" in message
    assert "clip_g.safetensors: CLIP text encoder (width 48, 2 layers)" in message
    scaled = load_file(folder / "text_encoders" / "clip_l.safetensors")
    save_file({**scaled, "scaled_fp8": torch.zeros(0)}, str(folder / "text_encoders" / "clip_l.safetensors"))
    with pytest.raises(PipelineLoadError, match="clip_l.safetensors: CLIP text encoder .* scaled fp8 format"):
        load_single_file(str(folder / "checkpoints" / os.path.basename(models["sd3-split"])), torch.float32, CPU)


def _marker_file(path, **shapes) -> str:
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(path))
    return str(path)


SD15 = {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)}


def test_missing_tokenizer_files_say_which_and_where(tmp_path, use_models):
    from loradeck.core.models.tiny_parts import tiny_clip_tokenizer
    from loradeck.core.settings import Settings

    path = _marker_file(tmp_path / "real-sd15.safetensors", **SD15)
    with pytest.raises(PipelineLoadError) as err:
        load_single_file(path, torch.float32, CPU, LocalFiles())
    message = str(err.value)
    assert "is a Stable Diffusion 1.x checkpoint" in message
    assert "CLIP tokenizer (vocab.json + merges.txt" in message and TOKENIZERS_ENV in message
    assert "comfy/sd1_tokenizer" in message and "models/tokenizers" in message
    tokenizers = tmp_path / "tok"
    tiny_clip_tokenizer().save_pretrained(str(tokenizers / "tokenizer"))  # a folder of tokenizer folders
    with pytest.raises(PipelineLoadError) as err:
        load_single_file(path, torch.float32, CPU, LocalFiles(tokenizer_dirs=(str(tokenizers),)))
    assert "tokenizer" not in str(err.value) and "CLIP-L text encoder" in str(err.value)
    assert Settings.from_env({TOKENIZERS_ENV: f"{tokenizers}{os.pathsep}/b"}).tokenizer_dirs == (str(tokenizers), "/b")
    use_models(str(tmp_path), tokenizer_dirs=(str(tokenizers),))  # the setting
    with pytest.raises(PipelineLoadError, match="CLIP-L text encoder") as err:
        open_pipeline(path, "float32")
    assert "tokenizer" not in str(err.value)
    use_models(str(tmp_path))
    with pytest.raises(PipelineLoadError, match="CLIP-L text encoder") as err:  # the API argument
        open_pipeline(path, "float32", tokenizer_dirs=(str(tokenizers / "tokenizer"),))
    assert "tokenizer" not in str(err.value)
    flux = _marker_file(tmp_path / "flux1-dev.safetensors", **{"double_blocks.0.img_attn.qkv.weight": (9216, 3072),
                                                               "img_in.weight": (3072, 64),
                                                               "guidance_in.in_layer.weight": (1, 1)})
    with pytest.raises(PipelineLoadError, match=r"FLUX.1 dev.*T5 tokenizer \(tokenizer.json or spiece.model"):
        load_single_file(flux, torch.float32, CPU, LocalFiles())


@pytest.mark.parametrize("case,expected", [
    ("lora", r"is a LoRA .*put it in models/loras and add it with Load LoRA"),
    ("unknown", r"unknown architecture .*markers found: .*input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight "
                r"\[320, 999\].*LoRA Deck loads single files of: .*FLUX.1 dev"),
    ("inpainting", r"looks like an inpainting"),
    ("text_encoder", r"is a text encoder \(CLIP text encoder \(width 32, 2 layers\)\).*models/text_encoders"),
    ("vae", r"is a VAE, not a checkpoint: put it in models/vae"),
])
def test_files_that_are_not_known_checkpoints_are_explained(case, expected, tmp_path, models, use_models):
    from loradeck.nodes import NODE_CLASS_MAPPINGS, host

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    path = checkpoints / f"{case}.safetensors"
    split_root = os.path.dirname(os.path.dirname(models["flux-split"]))
    copies = {"lora": os.path.join(host.DEMO_LORAS, "loradeck-demo-kohya.safetensors"),
              "text_encoder": os.path.join(split_root, "clip", "clip_l.safetensors"),
              "vae": os.path.join(split_root, "vae", "ae.safetensors")}
    if case in copies:
        shutil.copyfile(copies[case], path)
    else:
        shapes = dict(SD15)
        key = "inpainting" if case == "inpainting" else "unknown"
        shapes[list(SD15)[0 if key == "unknown" else 1]] = (320, 999) if key == "unknown" else (320, 9, 3, 3)
        _marker_file(path, **shapes)
    use_models(str(tmp_path))
    with pytest.raises(PipelineLoadError, match=expected) as err:
        NODE_CLASS_MAPPINGS[NODE]().load(path.name, "float32")
    assert repr(path.name) in str(err.value)


def _truncated(tmp_path, models):
    with open(models["sd1"], "rb") as f:
        data = f.read()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])


BAD_FILES = {
    "empty": lambda p, m: (p / "t.safetensors").write_bytes(b""),
    "short": lambda p, m: (p / "t.safetensors").write_bytes(b"\x01\x02"),
    "huge header": lambda p, m: (p / "t.safetensors").write_bytes((2**62).to_bytes(8, "little") + b"{}"),
    "not json": lambda p, m: (p / "t.safetensors").write_bytes((4).to_bytes(8, "little") + b"\xff\xfe{]"),
    "json list": lambda p, m: (p / "t.safetensors").write_bytes((2).to_bytes(8, "little") + b"[]"),
    "bad shape": lambda p, m: (p / "t.safetensors").write_bytes(
        (len(b'{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}')).to_bytes(8, "little")
        + b'{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}'),
    "truncated data": _truncated,
    "folder": lambda p, m: (p / "t.safetensors").mkdir(),
    "fifo": lambda p, m: os.mkfifo(p / "t.safetensors"),  # opening it would block forever
    "missing": lambda p, m: None,
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_raise_a_clear_error_and_never_hang(case, tmp_path, models):
    BAD_FILES[case](tmp_path, models)
    with pytest.raises(PipelineLoadError, match="t.safetensors"):
        load_single_file(str(tmp_path / "t.safetensors"), torch.float32, CPU, LocalFiles())
    (tmp_path / "t.ckpt").write_bytes(b"PK\x03\x04")
    with pytest.raises(PipelineLoadError, match="not a .safetensors or .gguf file"):
        open_pipeline(str(tmp_path / "t.ckpt"))


def test_folder_scan_survives_symlink_loops_and_odd_files(tmp_path, models):
    from loradeck.core.models.parts import scan_files

    folder = tmp_path / "text_encoders"
    folder.mkdir()
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    os.mkfifo(folder / "pipe.safetensors")
    (folder / "junk.safetensors").write_bytes(b"not a safetensors file")
    shutil.copyfile(os.path.join(os.path.dirname(os.path.dirname(models["flux-split"])), "clip", "clip_l.safetensors"),
                    folder / "clip_l.safetensors")
    assert [os.path.basename(h.path) for h in scan_files([str(folder)])] == ["clip_l.safetensors"]


def test_v_prediction_markers(tmp_path, models):
    from safetensors.torch import load_file

    from loradeck.core.families.sd1.single_file import v_prediction

    tensors = load_file(models["sd1"])
    tensors["v_pred"] = torch.tensor([])
    path = tmp_path / "checkpoints" / "vpred.safetensors"
    path.parent.mkdir()
    save_file(tensors, str(path))
    assert load_single_file(str(path), torch.float32, CPU).scheduler.config.prediction_type == "v_prediction"
    bias = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"  # ComfyUI's SD 2.x test
    for values, v in ((torch.linspace(-1, 1, 320), True), (torch.full((320,), 0.01), False)):
        header = Header(str(tmp_path / "sd2.safetensors"), {bias: (320,)}, {}, {}, lambda key, t=values: t)
        assert v_prediction(header, BY_KEY["sd2-v"]) is v
    (tmp_path / "sd2.yaml").write_text("model:\n  params:\n    parameterization: v\n")  # A1111's sidecar wins
    assert v_prediction(Header(str(tmp_path / "sd2.safetensors"), {}, {}, {}, None), BY_KEY["sd2-v"])


# --- real architectures, on the meta device: shipped configs, markers and diffusers' converters agree ---

def _meta_component(arch, name: str):
    from loradeck.core.models.build import meta_component

    return meta_component(arch.config_dir, name)


REAL_FAMILY = {"sd15": "sd1", "sd2-base": "sd1", "sd2-v": "sd1", "sdxl-base": "sdxl", "sd3-medium": "sd3",
               "sd35-medium": "sd3", "sd35-large": "sd3", "flux-dev": "flux", "flux-schnell": "flux",
               "chroma1-hd": "chroma", "z-image": "zimage", "qwen-image": "qwenimage",
               "qwen-image-edit": "qwenimage", "qwen-image-edit-plus": "qwenimage", "krea2": "krea2",
               "lumina2": "lumina2", "kandinsky5-lite": "kandinsky5", "auraflow": "auraflow"}


def _original_layout(arch) -> tuple[dict, dict]:
    """A meta-tensor checkpoint of ``arch`` in its original layout, and its meta models by component."""
    from original_layout import (
        clip_to_ldm,
        clip_to_open_clip,
        gemma2_to_comfy,
        qwen3_to_comfy,
        qwen3_vl_to_hf,
        qwen25_vl_to_comfy,
        t5_to_ldm,
        vae_to_ldm,
        wan_vae_to_original,
    )
    from single_file_fixtures import denoiser

    family = REAL_FAMILY[arch.key]
    names = ["unet" if family in ("sd1", "sdxl") else "transformer", "vae"]
    names += [slot.component for slot in arch.encoders]
    models = {n: _meta_component(arch, n) for n in names}
    holder = type("Pipe", (), models)
    vae = models["vae"]
    vae = {"first_stage_model." + k: v for k, v in wan_vae_to_original(vae.state_dict(), vae.config.num_res_blocks)
           .items()} if family in ("qwenimage", "krea2") else vae_to_ldm(vae.state_dict())
    tensors = {**denoiser(family, holder), **vae}
    for slot in arch.encoders:
        sd, prefix = models[slot.component].state_dict(), slot.prefixes[0]
        writer = t5_to_ldm if slot.kind in ("t5xxl", "pile_t5xl") else qwen3_to_comfy if slot.kind == "qwen3_4b" \
            else qwen25_vl_to_comfy if slot.kind == "qwen25_vl_7b" else qwen3_vl_to_hf if slot.kind == "qwen3_vl_4b" \
            else gemma2_to_comfy if slot.kind == "gemma2_2b" \
            else clip_to_open_clip if prefix.endswith(".model.") else clip_to_ldm
        tensors.update(writer(sd, prefix))
    return tensors, models


# all-in-one checkpoints; split-only rows (no encoder inside the file: FLUX.2, Wan) are checked at real size on the
# meta device in their family's model-file tests (tests/test_model_files_flux2.py, tests/test_model_files_wan.py)
@pytest.mark.parametrize("key", [a.key for a in ARCHS if not a.tiny and all(s.prefixes for s in a.encoders)])
def test_real_architecture_configs_markers_and_converters_agree(key):
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    arch = BY_KEY[key]
    tensors, models = _original_layout(arch)
    std = 0.5 if key == "sd2-v" else 0.0  # what ComfyUI's SD 2.x v-prediction test reads
    header = Header(f"/models/checkpoints/{key}.safetensors", {k: tuple(v.shape) for k, v in tensors.items()}, {},
                    {}, lambda k: torch.randn(tensors[k].shape) * std)
    assert detect(header, ARCHS) is arch and identify(header) is arch
    expected = {"sd15": "v1", "sd2-base": "v2", "sd2-v": "v2", "sdxl-base": "xl_base", "sd3-medium": "sd3",
                "sd35-medium": "sd35_medium", "sd35-large": "sd35_large", "flux-dev": "flux-dev",
                "flux-schnell": "flux-schnell", "chroma1-hd": "chroma", "z-image": "z-image-turbo",
                "qwen-image": None, "qwen-image-edit": None, "qwen-image-edit-plus": None, "krea2": "krea2",
                "lumina2": "lumina2",
                "auraflow": None}.get(key)  # diffusers detects AuraFlow by bare keys only, not a checkpoint's
    if expected:  # diffusers' own detection agrees (it has no key for Qwen-Image, only for 2.1)
        assert infer_diffusers_model_type(tensors) == expected
    if arch.derive is not None:  # what the family reads off the weights is what its shipped config says
        from loradeck.core.models.configs import resolve

        resolved = resolve(arch, header)
        assert resolved.temp is None and resolved.arch is arch, resolved.arch.title
        depth = {"kandinsky5-lite": "num_visual_blocks", "auraflow": "num_mmdit_layers"}.get(key, "num_layers")
        assert resolved.source("transformer", depth).startswith("the denoiser's")
    result = plan(header, arch, LocalFiles())
    assert not result.problems and {p.label for p in result.parts.values()} == {"the checkpoint"}
    if REAL_FAMILY[key] == "sd3":  # SD3 files without T5 ("incl_clips") load without it
        no_t5 = {k: v for k, v in header.shapes.items() if not k.startswith("text_encoders.t5xxl.")}
        result = plan(Header(header.path, no_t5, {}, {}, header.read_tensor), arch, LocalFiles())
        assert not result.problems and result.skipped == {"text_encoder_3"}
    for name, converted in _converted(arch, tensors, models).items():
        want = {k: tuple(v.shape) for k, v in models[name].state_dict().items()}
        got = {k: tuple(v.shape) for k, v in converted.items() if k in want}
        assert got == want, (name, sorted(set(want) - set(got))[:5])


def _converted(arch, tensors: dict, models: dict) -> dict[str, dict]:
    """Each component's weights after diffusers' own single-file converter (shapes only, on meta)."""
    from diffusers.loaders import single_file_utils as sfu

    from loradeck.core.families.chroma.single_file import state_dict as chroma_state_dict
    from loradeck.core.families.flux.single_file import state_dict as flux_state_dict

    out = {}
    for name, model in models.items():
        config = dict(model.config) if hasattr(model.config, "keys") else None
        if name == "unet":
            out[name] = sfu.convert_ldm_unet_checkpoint(dict(tensors), config)
        elif name == "vae" and arch.key.startswith(("qwen", "krea2")):
            out[name] = sfu.convert_wan_vae_to_diffusers({k.removeprefix("first_stage_model."): v
                                                          for k, v in tensors.items()
                                                          if k.startswith("first_stage_model.")})
        elif name == "vae":
            out[name] = sfu.convert_ldm_vae_checkpoint({k: v for k, v in tensors.items()
                                                        if k.startswith("first_stage_model.")}, config)
        elif name == "transformer" and arch.key.startswith("chroma"):
            out[name] = sfu.convert_chroma_transformer_checkpoint_to_diffusers(chroma_state_dict(
                {k: v for k, v in tensors.items() if k.startswith("model.")}, config))
        elif name == "transformer" and arch.key.startswith("flux"):
            out[name] = sfu.convert_flux_transformer_checkpoint_to_diffusers(flux_state_dict(
                {k: v for k, v in tensors.items() if k.startswith("model.")}, config))
        elif name == "transformer" and arch.key == "auraflow":
            out[name] = sfu.convert_auraflow_transformer_checkpoint_to_diffusers(
                {k.removeprefix("model.diffusion_model."): v for k, v in tensors.items() if k.startswith("model.")})
        elif name == "transformer" and arch.key.startswith("krea2"):
            out[name] = sfu.convert_krea2_transformer_checkpoint_to_diffusers(
                {k: v for k, v in tensors.items() if k.startswith("model.")})
        elif name == "transformer" and arch.key.startswith("lumina2"):  # its prepare splits q/k/v first
            from loradeck.core.families.lumina2.single_file import prepare

            out[name] = sfu.convert_lumina2_to_diffusers(prepare(
                {k: v for k, v in tensors.items() if k.startswith("model.")}, config))
        elif name == "transformer" and arch.key.startswith(("qwen", "kandinsky5")):  # the identity (Kandinsky 5:
            # no diffusers mapping; core/families/kandinsky5/single_file.py's builder takes its own names)
            out[name] = {k.removeprefix("model.diffusion_model."): v for k, v in tensors.items()
                         if k.startswith("model.diffusion_model.")}
        elif name == "transformer" and arch.key.startswith("z-image"):
            out[name] = sfu.convert_z_image_transformer_checkpoint_to_diffusers(
                {k: v for k, v in tensors.items() if k.startswith("model.")})
        elif name == "transformer":
            out[name] = sfu.convert_sd3_transformer_checkpoint_to_diffusers(
                {k: v for k, v in tensors.items() if k.startswith("model.")})
        else:
            out[name] = _converted_encoder(arch, name, model, tensors)
    return out


def _converted_encoder(arch, name: str, model, tensors: dict) -> dict:
    from diffusers.loaders import single_file_utils as sfu

    slot = next(s for s in arch.encoders if s.component == name)
    own = {k: v for k, v in tensors.items() if k.startswith(slot.prefixes[0])}
    if slot.kind in ("qwen3_4b", "gemma2_2b"):  # no diffusers converter: transformers names under the slot's prefix
        return {k[len(slot.prefixes[0]):]: v for k, v in own.items()}
    if slot.kind == "qwen25_vl_7b":  # ComfyUI's names under the prefix: what build.qwen_vl_model renames
        renamed = {("model.language_model." + k[6:] if k.startswith("model.") else "model." + k): v
                   for k, v in ((k[len(slot.prefixes[0]):], v) for k, v in own.items())}
        return {**renamed, "lm_head.weight": renamed["model.language_model.embed_tokens.weight"]}
    if slot.kind == "qwen3_vl_4b":  # the released checkpoint's names under the prefix -> Qwen3VLModel's
        return {k[len(slot.prefixes[0]) + len("model."):]: v for k, v in own.items()}
    if slot.kind in ("t5xxl", "pile_t5xl"):  # diffusers' T5 loader reads T5-XXL's prefix (parts.py renames to it)
        own = {"text_encoders.t5xxl.transformer." + k[len(slot.prefixes[0]):]: v for k, v in own.items()}
        converted = sfu.convert_sd3_t5_checkpoint_to_diffusers(own)
        converted["encoder.embed_tokens.weight"] = converted["shared.weight"]  # tied after loading
        return converted
    if slot.prefixes[0].endswith(".model."):
        converted = sfu.convert_open_clip_checkpoint(model, own, prefix=slot.prefixes[0])
    else:
        converted = sfu.convert_ldm_clip_checkpoint(own, slot.prefixes[0])
        if "text_projection.weight" in model.state_dict():  # SD3's CLIP-L: diffusers sets the identity
            converted["text_projection.weight"] = model.text_projection.weight
    flat = not hasattr(model, "text_model")
    return {k.removeprefix("text_model.") if flat else k: v for k, v in converted.items()}


def test_shipped_tiny_configs_equal_the_built_in_models():
    import importlib.util

    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "make_tiny_configs.py")
    spec = importlib.util.spec_from_file_location("make_tiny_configs", tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for arch, family in module.tiny_archs().items():
        for rel, data in module.tiny_config_files(arch, family).items():
            with open(os.path.join(arch.config_dir, rel), encoding="utf-8") as f:
                assert json.load(f) == data, f"{arch.key}/{rel}: run python tools/make_tiny_configs.py"


@pytest.mark.skipif(not os.environ.get("COMFYUI_ROOT"), reason="set COMFYUI_ROOT to a ComfyUI checkout")
def test_comfyui_bundled_tokenizers_load_as_the_pipelines_need_them():
    from loradeck.core.models import tokenizers as tokenizer_files

    root = os.environ["COMFYUI_ROOT"]
    folder = tokenizer_files.find("clip", [root])
    assert folder == os.path.join(root, "comfy", "sd1_tokenizer")
    clip_g = tokenizer_files.load("clip", folder, "!")
    assert (len(clip_g), clip_g.model_max_length, clip_g.pad_token_id) == (49408, 77, 0)
    t5_folder = tokenizer_files.find("t5", [os.path.join(root, "comfy")])
    assert t5_folder == os.path.join(root, "comfy", "text_encoders", "t5_tokenizer")
    assert tokenizer_files.load("t5", t5_folder, None)("a cat").input_ids[-1] == 1  # </s>


def test_cli_tokenizers_option_names_the_folder_for_the_run(monkeypatch, tmp_path):
    import loradeck.runner
    from loradeck import cli

    seen = {}

    def run_workflow(*args, runtime=None, **kwargs):
        seen["dirs"] = runtime.settings.tokenizer_dirs
        return type("Context", (), {"saved": []})

    monkeypatch.setenv(TOKENIZERS_ENV, "/elsewhere")
    monkeypatch.setattr(loradeck.runner, "run_workflow", run_workflow)
    workflow = tmp_path / "wf.json"  # the command checks that the workflow file exists before it runs
    workflow.write_text("{}")
    assert cli.main(["run", str(workflow), "--tokenizers", str(tmp_path)]) == 0
    assert seen["dirs"] == (str(tmp_path), "/elsewhere")  # the named folder first, then the setting
