"""Every format loads through LoadLoRA and behaves like a plain LoRA; bad files are refused cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import save_file

import lora_fixtures as fx
from helpers import assert_bit_identical, base_weights, make_pipe, render
from loradeck.core import Deck, IncompatibleLoraError, LoraFileError
from loradeck.core.api import PipelineHandle
from loradeck.nodes import NODE_CLASS_MAPPINGS

WRITERS = {
    "locon": lambda p: fx.write_kohya_locon(p, 1),
    "locon_tucker": lambda p: fx.write_kohya_locon(p, 2, tucker=True),
    "loha": lambda p: fx.write_loha(p, 3),
    "loha_tucker": lambda p: fx.write_loha(p, 4, tucker=True),
    "lokr_full": lambda p: fx.write_lokr(p, 5, w2_decomposed=False),
    "lokr": lambda p: fx.write_lokr(p, 6, w1_decomposed=True),
    "dora": lambda p: fx.write_dora(p, 7),
    "dora_loha": lambda p: fx.write_dora(p, 8, "loha", axis=0),
    "peft": lambda p: fx.write_peft(p, 9),
    "peft_text_encoder": lambda p: fx.write_peft(p, 10, component="text_encoder"),
    "peft_dora": lambda p: fx.write_peft(p, 11, dora=True),
    "old_diffusers": lambda p: fx.write_old_diffusers(p, 12),
    "old_diffusers_unprefixed": lambda p: fx.write_old_diffusers(p, 13, unet_prefix=False),
}
FORMAT_LABELS = {"locon": "kohya LoRA+LoCon", "locon_tucker": "kohya LoRA+LoCon", "loha": "LyCORIS LoHa",
                 "lokr": "LyCORIS LoKr", "dora": "with DoRA", "peft": "PEFT", "peft_dora": "PEFT with DoRA",
                 "old_diffusers": "diffusers (attention processors)"}


@pytest.fixture(scope="module")
def format_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    (root / "loras").mkdir()
    for name, write in WRITERS.items():
        write(str(root / "loras" / f"{name}.safetensors"))
    return root


def _path(format_dir, name: str) -> str:
    return str(format_dir / "loras" / f"{name}.safetensors")


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_format_loads_through_the_load_lora_node(format_dir, name, use_models):
    use_models(str(format_dir))
    handle = PipelineHandle(Deck(make_pipe()).owner)
    base = render(handle.owner.pipe, steps=2)
    out = NODE_CLASS_MAPPINGS["LoadLoRA|LoRADeck"]().load(handle, f"{name}.safetensors", 1.0, 1.0)
    loaded, info = out["result"][:2]  # then trigger_words
    report = loaded.owner.prepare(_path(format_dir, name)).report
    assert report.matched == report.total > 0 and not report.partial, info
    assert "WARNING" not in info and "modules matched" in info
    assert FORMAT_LABELS.get(name, "") in report.format
    loaded.apply()
    assert (render(loaded.owner.pipe, steps=2) - base).abs().max() > 1e-3


def test_info_output_names_base_model_and_trigger_words(format_dir, use_models):
    use_models(str(format_dir))
    handle = PipelineHandle(Deck(make_pipe()).owner)
    info = NODE_CLASS_MAPPINGS["LoadLoRA|LoRADeck"]().load(handle, "loha.safetensors", 1.0, 1.0)["result"][1]
    assert "base model: SD 1.x" in info and "trigger words: cat, sks style, outdoors" in info


@pytest.mark.parametrize("name", ["peft", "old_diffusers_unprefixed"])
def test_files_diffusers_silently_ignores_are_applied(format_dir, name):
    """diffusers loads nothing from these layouts (only a warning); LoRA Deck applies every module."""
    theirs, ours = make_pipe(), make_pipe()
    base = render(theirs, steps=2)
    theirs.load_lora_weights(_path(format_dir, name), adapter_name="x")
    assert not [m for m in theirs.unet.modules() if isinstance(m, BaseTunerLayer)]
    assert torch.equal(render(theirs, steps=2), base)
    Deck(ours).add(_path(format_dir, name))
    assert (render(ours, steps=2) - base).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["loha", "lokr", "dora"])
def test_behaves_like_a_plain_lora(format_dir, files, name, runtime):
    """Strength 0 is the base; strengths are scale writes; disable gives the base, enable gives it back."""
    pipe = make_pipe()
    base = render(pipe)
    deck = Deck(pipe).add(_path(format_dir, name), name="x", model=0.0, clip=0.0)
    assert torch.equal(render(pipe), base)
    reads, loads = runtime.store.reads, deck.owner.loads
    deck.set_weights("x", model=1.0, clip=0.5)
    full = render(pipe)
    assert (full - base).abs().max() > 1e-3
    deck.set_weights("x", model=0.5)
    assert (runtime.store.reads, deck.owner.loads) == (reads, loads)
    assert dict(deck.active()[0].weights) == {"unet": 0.5, "text_encoder": 0.5}
    deck.set_weights("x", enabled=False)
    assert torch.equal(render(pipe), base)
    deck.set_weights("x", enabled=True, model=1.0)
    assert torch.equal(render(pipe), full)


@pytest.mark.parametrize("name", ["loha", "lokr", "locon_tucker", "dora"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_stacked_fuse_matches_and_unfuse_is_exact(format_dir, files, name, dtype):
    pipe = make_pipe(dtype)
    original = base_weights(pipe)
    deck = Deck(pipe).add(_path(format_dir, name), name="x", model=0.8, clip=0.6).add(files["k"], name="k")
    unfused = render(pipe)
    deck.fuse()
    assert all(v.fused for v in deck.active())
    if dtype == torch.float32:  # in bf16 fused weights round to 8 bits: only exactness of unfuse is checked
        assert (render(pipe) - unfused).abs().max() < 1e-3
    for cycle in range(3):
        deck.set_weights("x", model=0.3 + cycle / 4)  # reweight while fused: re-fuses from the originals
        deck.fuse(lora_scale=0.5 + cycle / 3, names=["x"])
        deck.unfuse()
    deck.fuse()
    deck.unload()
    assert_bit_identical(original, base_weights(pipe))
    assert not [m for m in pipe.unet.modules() if isinstance(m, BaseTunerLayer)]


def _no_tensors(path: str) -> str:
    save_file({}, path, metadata={"ss_output_name": "empty"})
    return path


def _truncated(path: str) -> str:
    fx.write_loha(path, 20)
    data = Path(path).read_bytes()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    return path


def _pickle(path: str) -> str:
    torch.save({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, path)
    return path


BAD_FILES = {  # file name -> (writer, error type, words the message must contain)
    "wrong_base.safetensors": (lambda p: fx.write_sdxl_shaped(p, 1), IncompatibleLoraError,
                               ("SDXL", "Stable Diffusion 1.x/2.x pipeline", "cross-attention width 32",
                                "Use a LoRA made for")),
    "empty.safetensors": (_no_tensors, LoraFileError, ("contains no tensors", "re-download")),
    "renamed.safetensors": (lambda p: fx.write_unknown_modules(p, 2), IncompatibleLoraError,
                            ("matched none of its 3 modules", "Use a LoRA made for")),
    "old.ckpt": (_pickle, LoraFileError, ("is a pickle file", "can run code", "Convert it")),
    "cut.safetensors": (_truncated, LoraFileError, ("corrupt", "Re-download")),
    "oft.safetensors": (lambda p: fx.write_oft(p, 3), LoraFileError, ("OFT", "cannot apply")),
}


@pytest.mark.parametrize("file_name", list(BAD_FILES))
def test_bad_files_are_refused_with_the_pipeline_bit_identical(tmp_path, files, file_name):
    write, error, words = BAD_FILES[file_name]
    path = write(str(tmp_path / file_name))
    pipe = make_pipe()
    deck = Deck(pipe).add(files["k"], name="k", model=0.7)
    before, image = base_weights(pipe), render(pipe, steps=2)
    layers = sorted(n for n, m in pipe.unet.named_modules() if isinstance(m, BaseTunerLayer))
    with pytest.raises(error) as caught:
        deck.add(path, name="bad")
    message = str(caught.value)
    assert file_name in message and all(w in message for w in words), message
    assert_bit_identical(before, base_weights(pipe))
    assert sorted(n for n, m in pipe.unet.named_modules() if isinstance(m, BaseTunerLayer)) == layers
    assert torch.equal(render(pipe, steps=2), image)
    assert [v.name for v in deck.active()] == ["k"]


def test_a_partial_match_is_refused_unless_asked_for(tmp_path, format_dir, use_models):
    from safetensors.torch import load_file

    sd = load_file(_path(format_dir, "loha"))
    sd["lora_unet_renamed_block_proj.hada_w1_a"] = torch.zeros(4, 2)
    sd["lora_unet_renamed_block_proj.hada_w1_b"] = torch.zeros(2, 4)
    sd["lora_unet_renamed_block_proj.hada_w2_a"] = torch.zeros(4, 2)
    sd["lora_unet_renamed_block_proj.hada_w2_b"] = torch.zeros(2, 4)
    path = str(tmp_path / "partial.safetensors")
    save_file(sd, path)
    use_models(str(tmp_path.parent))
    pipe = make_pipe()
    before = base_weights(pipe)
    with pytest.raises(IncompatibleLoraError, match="apply only in part.*renamed_block_proj.*LORADECK_ALLOW_PARTIAL"):
        Deck(pipe).add(path)
    assert_bit_identical(before, base_weights(pipe))
    deck = Deck(pipe).add(path, allow_partial=True)
    report = deck.owner.prepare(path).report
    assert report.partial and report.matched == report.total - 1
    assert "WARNING: 1 of its modules are not in this pipeline" in report.text()
    assert "renamed_block_proj" in report.text()
    assert report.to_dict()["warnings"]


def test_one_module_under_two_names_is_applied_once_and_differing_copies_are_refused(tmp_path, files):
    """A file may name a module twice (Z-Image's fused ``attention.qkv`` beside its split ``to_q/k/v``; here the
    diffusers and the original LDM kohya names of one SD 1.x layer): the same change is applied once, as diffusers
    and ComfyUI each apply one of the names; copies that differ are refused, the pipeline unchanged."""
    from safetensors.torch import load_file

    source = load_file(files["k"])
    stem = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    copy = {k.replace(stem, "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q"): v.clone()
            for k, v in source.items() if k.startswith(stem + ".")}
    twice = str(tmp_path / "twice.safetensors")
    save_file({**source, **copy}, twice)
    once, doubled = make_pipe(), make_pipe()
    Deck(once).add(files["k"], "x").fuse()
    deck = Deck(doubled).add(twice, "x")
    report = deck.owner.prepare(twice).report
    assert report.matched == report.total and not report.partial
    deck.fuse()
    assert_bit_identical(base_weights(once), base_weights(doubled))
    key = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_up.weight"
    differing = str(tmp_path / "differing.safetensors")
    save_file({**source, **copy, key: copy[key] * 2}, differing)
    pipe = make_pipe()
    before = base_weights(pipe)
    with pytest.raises(LoraFileError, match=r"differing.safetensors.*patches unet module down_blocks\.0\.attentions"
                                            r"\.0\.transformer_blocks\.0\.attn1\.to_q twice with different changes"):
        Deck(pipe).add(differing)
    assert_bit_identical(before, base_weights(pipe))
