"""Krea 2 (Krea-2-Raw / Turbo): every LoRA layout its trainers write loads exactly, and every feature works on it.

tests/fixtures/trainers/krea2/ holds files made by the trainers' own code (musubi-tuner, ai-toolkit, LyCORIS,
DiffSynth-Studio, diffusers/peft) for the built-in tiny-krea2, each with ``.expected.safetensors``: the trainer's
own merge (merged - original, under the trainer's module names; README.md there says how each was made). The
trainers' original names are mapped to diffusers modules here by diffusers' own single-file converter
(``convert_krea2_transformer_checkpoint_to_diffusers``), not by LoRA Deck's table. Where diffusers itself loads a
layout, LoRA Deck's images and weights are also compared with diffusers'.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from family_fixtures import PARAMS, fresh, render
from helpers import assert_bit_identical, check_parameter_difference
from loradeck.core import Deck, IncompatibleLoraError, LoraDeckError, PipelineLoadError, SpecError, StackSpec
from loradeck.core.adapters.save import save_stack
from loradeck.core.families import FAMILIES
from loradeck.core.generation.generate import generate

KEY = "krea2"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "trainers" / KEY
FLAT = FIXTURES.parent  # the Flux / SD3 trainer files
MANIFEST = json.loads((FIXTURES / "MANIFEST.json").read_text())
NAMES = sorted(p.name.removesuffix(".expected.safetensors") for p in FIXTURES.glob("*.expected.safetensors"))
TOLERANCE = 1e-3  # relative, per module
IMAGE_TOLERANCE = 2 / 255
# what diffusers 0.42.1's Krea2Pipeline.load_lora_weights does with each layout
DIFFUSERS_LOADS = {"krea2_diffusers_peft", "krea2_aitoolkit_lora", "krea2_diffsynth_opensource",
                   "krea2_peft_original"}
DIFFUSERS_RAISES = {"krea2_aitoolkit_lokr", "krea2_lycoris_lokr_simpletuner", "krea2_musubi_converted_other"}
RENDERED = {"krea2_diffusers_peft", "krea2_aitoolkit_lora"}  # images too (the others: weights, which decide them)
DIFFUSERS_LOADS_NOTHING = {"krea2_musubi_lora", "krea2_musubi_lora_attn_only", "krea2_lycoris_lokr_kohya",
                           "krea2_diffsynth_lora"}


def path(name: str) -> str:
    return str(FIXTURES / f"{name}.safetensors")


@functools.cache
def _diffusers_name(key: str) -> str:
    """A trainer's weight name as the diffusers parameter it is (diffusers names pass through)."""
    from diffusers.loaders.single_file_utils import convert_krea2_transformer_checkpoint_to_diffusers

    if key in _diffusers_names():
        return key
    (converted,) = convert_krea2_transformer_checkpoint_to_diffusers({key: torch.zeros(1)})
    assert converted in _diffusers_names(), (key, converted)
    return converted


@functools.cache
def _diffusers_names() -> frozenset:
    return frozenset(fresh(KEY).transformer.state_dict())


def _weights(pipe) -> dict[str, torch.Tensor]:
    return {k.replace(".base_layer", ""): v.detach().clone() for k, v in pipe.transformer.state_dict().items()
            if "lora_" not in k}


def _state(pipe) -> dict:
    return {(c, k): v.clone() for c, m in pipe.components.items() if isinstance(m, torch.nn.Module)
            for k, v in m.state_dict().items()}


def test_every_layout_diffusers_cannot_load_is_one_the_table_says():
    assert set(NAMES) == DIFFUSERS_LOADS | DIFFUSERS_RAISES | DIFFUSERS_LOADS_NOTHING
    assert set(NAMES) == {Path(e["file"]).stem for e in MANIFEST["files"].values()}


@pytest.mark.parametrize("name", NAMES)
def test_fused_delta_equals_the_trainers_own_merge(name):
    expected = load_file(str(FIXTURES / f"{name}.expected.safetensors"))
    pipe = fresh(KEY)
    before = _weights(pipe)
    deck = Deck(pipe).add(path(name))
    report = deck.owner.prepare(path(name)).report
    assert report.matched == report.total == len(expected) and not report.partial, report.text()
    deck.fuse()
    after = _weights(pipe)
    worst = max((float((after[_diffusers_name(k)] - before[_diffusers_name(k)] - want.float()).norm()
                       / want.float().norm()), k) for k, want in expected.items())
    assert worst[0] < TOLERANCE, worst
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {_diffusers_name(k) for k in expected}  # nothing the trainer did not touch


@pytest.mark.parametrize("name", sorted(DIFFUSERS_LOADS))
def test_where_diffusers_loads_a_layout_the_images_and_weights_equal_diffusers(name):
    ours, theirs = fresh(KEY), fresh(KEY)
    deck = Deck(ours).add(path(name), "x", model=0.8)
    theirs.load_lora_weights(path(name), adapter_name="x")
    theirs.set_adapters(["x"], [0.8])
    if name in RENDERED:
        image = render(KEY, ours)
        assert (image - render(KEY, theirs)).abs().max() <= IMAGE_TOLERANCE
        assert (image - render(KEY, fresh(KEY))).abs().max() > IMAGE_TOLERANCE  # the LoRA matters
    deck.fuse()
    theirs.fuse_lora(lora_scale=1.0)  # set_adapters' 0.8 is part of the layers' scale already
    mine, reference = _weights(ours), _weights(theirs)
    for key, value in reference.items():
        assert torch.allclose(mine[key], value, rtol=1e-5, atol=1e-6), key


@pytest.mark.parametrize("name", sorted(DIFFUSERS_RAISES | DIFFUSERS_LOADS_NOTHING))
def test_diffusers_alone_cannot_load_the_other_layouts(name, caplog):
    """Why their reference is the trainer's merge: diffusers raises on them, or adapts no module at all."""
    pipe = fresh(KEY)
    try:
        pipe.load_lora_weights(path(name), adapter_name="x")
    except ValueError:
        assert name in DIFFUSERS_RAISES
        return
    assert name in DIFFUSERS_LOADS_NOTHING
    assert not any(hasattr(m, "lora_A") for m in pipe.transformer.modules())


@pytest.mark.parametrize("name,old,new", [
    ("krea2_lycoris_lokr_kohya", "lora_unet_", "lycoris_"),  # ai-toolkit's first LoKr files (before 724e67d6)
    ("krea2_diffsynth_opensource", "transformer.", ""),  # bare diffusers names (ComfyUI takes them)
    ("krea2_aitoolkit_lora", "diffusion_model.", "model.diffusion_model."),  # a checkpoint's prefix
    ("krea2_aitoolkit_lora", "diffusion_model.", "transformer."),  # original names under the component
])
def test_the_same_modules_under_other_spellings_load_the_same(name, old, new, tmp_path):
    state = load_file(path(name))
    renamed = {new + k.removeprefix(old): v for k, v in state.items()}
    assert len(renamed) == len(state) and all(k.startswith(old) for k in state)
    out = tmp_path / "renamed.safetensors"
    save_file(renamed, str(out))
    original, respelled = fresh(KEY), fresh(KEY)
    Deck(original).add(path(name)).fuse()
    report = Deck(respelled).add(str(out)).fuse().owner.prepare(str(out)).report
    assert report.matched == report.total and not report.partial
    assert_bit_identical(_weights(original), _weights(respelled))


def test_musubis_converted_names_mean_the_blocks_they_were_converted_from():
    """convert_lora.py writes txtfusion.layerwise.blocks.N for txtfusion.layerwise_blocks.N: the same change as the
    source file, module for module."""
    converted, source = fresh(KEY), fresh(KEY)
    Deck(converted).add(path("krea2_musubi_converted_other")).fuse()
    Deck(source).add(path("krea2_musubi_lora")).fuse()
    mine, theirs = _weights(converted), _weights(source)
    assert all(torch.allclose(mine[k], theirs[k], rtol=1e-5, atol=1e-7) for k in theirs)


def _patched(name: str):
    """A fresh pipeline whose weights were patched with the trainer's own deltas (no LoRA Deck involved)."""
    pipe = fresh(KEY)
    with torch.no_grad():
        for key, delta in load_file(str(FIXTURES / f"{name}.expected.safetensors")).items():
            pipe.transformer.state_dict()[_diffusers_name(key)] += delta.float()
    return pipe


def test_a_workflow_run_equals_a_pipeline_patched_with_the_trainers_deltas(tmp_path):
    import numpy as np
    from PIL import Image

    from loradeck.runner import Workflow, run_workflow

    name = "krea2_musubi_lora"
    loras = tmp_path / "models" / "loras"
    loras.mkdir(parents=True)
    (loras / f"{name}.safetensors").write_bytes(Path(path(name)).read_bytes())
    workflow = Workflow({
        "1": {"class_type": "LoadPipeline|LoRADeck", "inputs": {"model_name": "tiny-krea2 (built-in)",
                                                               "dtype": "float32"}},
        "2": {"class_type": "LoadLoRA|LoRADeck", "inputs": {"pipeline": ["1", 0], "lora_name": f"{name}.safetensors",
                                                           "strength_model": 1.0, "strength_clip": 1.0}},
        "3": {"class_type": "Generate|LoRADeck", "inputs": {"pipeline": ["2", 0], "prompt": PARAMS.prompt,
                                                           "negative_prompt": "", "seed": PARAMS.seed,
                                                           "steps": PARAMS.steps, "cfg": PARAMS.cfg, "width": 64,
                                                           "height": 64, "batch_size": 1}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "krea2"}},
    }, None, "test")
    context = run_workflow(workflow, str(tmp_path / "out"), str(tmp_path / "models"))
    ours = np.asarray(Image.open(context.saved[0]), dtype=np.int16)
    theirs = (render(KEY, _patched(name))[0].numpy() * 255).round().astype(np.int16)
    base = (render(KEY, fresh(KEY))[0].numpy() * 255).round().astype(np.int16)
    assert np.abs(ours - theirs).max() <= 2
    assert np.abs(theirs - base).max() > 2


def test_the_built_in_is_listed_and_turbo_is_the_folder_s_own_setting(tmp_path, use_models):
    from loradeck.nodes import NODE_CLASS_MAPPINGS, host

    turbo = FAMILIES[KEY].tiny(is_distilled=True)
    turbo.save_pretrained(str(tmp_path / "diffusers" / "krea-2-turbo"))
    use_models(str(tmp_path))
    listed = host.diffusers_models()
    assert "tiny-krea2 (built-in)" in listed and "krea-2-turbo" in listed
    handle = NODE_CLASS_MAPPINGS["LoadPipeline|LoRADeck"]().load("krea-2-turbo", "float32")[0]
    assert handle.owner.family.key == KEY and handle.owner.pipe.config.is_distilled
    # Turbo's fixed shift (mu 1.15) makes another picture from the same weights, as diffusers' own call does
    params = dataclasses.replace(PARAMS, cfg=1.0)
    ours = generate(handle.owner, StackSpec(), params)
    turbo.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        theirs = turbo(PARAMS.prompt, num_inference_steps=PARAMS.steps, guidance_scale=0.0, height=64, width=64,
                       generator=torch.Generator().manual_seed(PARAMS.seed), output_type="np").images
    assert (ours - torch.from_numpy(theirs)).abs().max() <= IMAGE_TOLERANCE
    assert (ours - generate(Deck(fresh(KEY)).owner, StackSpec(), params)).abs().max() > IMAGE_TOLERANCE


@pytest.mark.parametrize("cfg,guidance", [(1.0, 0.0), (0.5, 0.0), (5.5, 4.5)])
def test_cfg_is_the_usual_scale_and_diffusers_guidance_is_one_less(cfg, guidance):
    """Krea2Pipeline computes cond + g * (cond - uncond) = CFG 1 + g; cfg 1 (or less) runs without guidance."""
    kwargs = FAMILIES[KEY].call(dataclasses.replace(PARAMS, cfg=cfg, negative_prompt="blurry"), lambda s, t: None)
    assert kwargs["guidance_scale"] == guidance and kwargs["negative_prompt"] == "blurry"


def test_a_turbo_run_without_guidance_calls_the_denoiser_once_per_step():
    pipe = fresh(KEY)
    calls = []
    pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(1))
    generate(Deck(pipe).owner, StackSpec(), dataclasses.replace(PARAMS, cfg=1.0, negative_prompt="blurry"))
    assert len(calls) == PARAMS.steps


def test_trainer_files_take_strengths_blocks_switches_fuse_and_save(tmp_path):
    pipe = fresh(KEY)
    base, original = render(KEY, pipe), _weights(pipe)
    deck = Deck(pipe).add(path("krea2_musubi_lora"), name="musubi", model=0.0, clip=0.0)
    assert torch.equal(render(KEY, pipe), base)
    deck.add(path("krea2_aitoolkit_lokr"), name="lokr", model=0.7)
    deck.set_weights("musubi", model=0.8, clip=0.5, blocks={"blocks.0": 0.0, "tproj": 0.5})
    stacked = render(KEY, pipe)
    assert (stacked - base).abs().max() > 1e-3
    deck.set_weights("lokr", enabled=False)
    assert not torch.equal(render(KEY, pipe), stacked)
    deck.set_weights("lokr", enabled=True).fuse()
    assert (render(KEY, pipe) - stacked).abs().max() < 1e-4
    report = save_stack(deck.owner, deck.stack, str(tmp_path / "saved.safetensors"))
    assert report.relative_error < 1e-5
    deck.unfuse().unload()
    assert_bit_identical(original, _weights(pipe))
    again = fresh(KEY)
    Deck(again).add(report.path)
    assert (render(KEY, again) - stacked).abs().max() < 1e-4


def _without(name: str, tmp_path, *flat_prefixes: str) -> str:
    """The fixture without the modules whose kohya names start with any of ``flat_prefixes``."""
    state = load_file(path(name))
    kept = {k: v for k, v in state.items() if not k.startswith(tuple(f"lora_unet_{p}" for p in flat_prefixes))}
    assert len(kept) < len(state)
    out = tmp_path / f"{name}-without.safetensors"
    save_file(kept, str(out))
    return str(out)


@pytest.mark.parametrize("blocks,removed", [
    ("blocks.0=0, txtfusion.layerwise_blocks.1=0, tproj=0", ("blocks_0_", "txtfusion_layerwise_blocks_1_", "tproj_")),
    ("text_fusion.refiner_blocks.0-1=0, first=0, last=0", ("txtfusion_refiner_blocks_", "first", "last_")),
    ("txtfusion=0, transformer_blocks.1=0", ("txtfusion_", "blocks_1_")),
])
def test_block_weights_by_the_names_users_know_equal_removing_those_modules(blocks, removed, tmp_path):
    name = "krea2_musubi_lora"
    weighted, without = fresh(KEY), fresh(KEY)
    Deck(weighted).add(path(name), "x").set_weights_text(f"x: {blocks}")
    Deck(without).add(_without(name, tmp_path, *removed), "x")
    assert (render(KEY, weighted) - render(KEY, without)).abs().max() < 1e-5


def test_block_weights_equal_diffusers_dict_form():
    """diffusers' dict form matches module names by substring and, failing that, reads them as UNet names
    (an IndexError on top-level modules such as img_in): a file with block modules only is what it can weight."""
    name = "krea2_aitoolkit_lora"
    ours, theirs = fresh(KEY), fresh(KEY)
    Deck(ours).add(path(name), "x").set_weights("x", blocks={"blocks.0": 0.3})
    theirs.load_lora_weights(path(name), adapter_name="x")
    theirs.set_adapters(["x"], [{"transformer": {"transformer_blocks.0": 0.3}}])
    assert (render(KEY, ours) - render(KEY, theirs)).abs().max() <= IMAGE_TOLERANCE


@pytest.mark.parametrize("text,match", [
    ("x: blocks.2=0", r"'blocks.2': blocks has blocks 0-1"),
    ("x: txtfusion.refiner_blocks.0-3=0", r"txtfusion.refiner_blocks has blocks 0-1"),
    ("x: single_blocks.0=0", r"Krea 2 block groups are blocks \(0-1\), txtfusion.layerwise_blocks \(0-1\), "
                             r"txtfusion.refiner_blocks \(0-1\).*whole parts: first, tmlp, tproj"),
    ("x: tproj.1=0", r"'tproj.1': Krea 2 block groups are"),
    ("x: blocks.0=[0.5, 1]", r"Krea 2 blocks and parts take one value"),
])
def test_bad_block_names_say_which_there_are(text, match):
    deck = Deck(fresh(KEY)).add(path("krea2_musubi_lora_attn_only"), "x")
    with pytest.raises(SpecError, match=match):
        deck.set_weights_text(text)


def test_the_snapshot_shows_strengths_blocks_and_their_spread():
    deck = Deck(fresh(KEY), label="krea2").add(path("krea2_musubi_lora"), "m", model=0.8)
    deck.add(path("krea2_aitoolkit_lokr"), "k").set_weights("k", enabled=False)
    deck.set_weights_text("m: blocks.0=0.5, tproj=0")
    views = {v.name: v for v in deck.active()}
    assert views["m"].blocks == "blocks.0=0.5, tproj=0" and dict(views["m"].weights)["transformer"] == 0.8
    assert dict((c, (low, high)) for c, low, high in views["m"].layer_strengths)["transformer"] == (0.0, 0.8)
    assert (views["k"].state, views["k"].enabled) == ("disabled", False)
    assert views["m"].report["components"][0]["component"] == "transformer"


def test_a_prompt_tag_equals_adding_the_file(tmp_path, use_models):
    loras = tmp_path / "loras"
    loras.mkdir()
    (loras / "watercolor.safetensors").write_bytes(Path(path("krea2_aitoolkit_lora")).read_bytes())
    use_models(str(tmp_path))
    tagged = generate(Deck(fresh(KEY)).owner, StackSpec(),
                      dataclasses.replace(PARAMS, prompt=f"{PARAMS.prompt} <lora:watercolor:0.6>"))
    deck = Deck(fresh(KEY)).add(str(loras / "watercolor.safetensors"), model=0.6)
    assert torch.equal(tagged, generate(deck.owner, deck.stack, PARAMS))


def _one_step(deck: Deck) -> torch.Tensor:
    with torch.inference_mode():
        return deck.pipe(PARAMS.prompt, num_inference_steps=1, guidance_scale=0.0, height=32, width=32,
                         max_sequence_length=16, generator=torch.Generator().manual_seed(0),
                         output_type="latent").images


def test_compiled_denoiser_does_not_recompile_within_the_envelope():
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    try:
        files = {n: path(n) for n in ("krea2_musubi_lora", "krea2_aitoolkit_lora")}
        compiled = Deck(fresh(KEY)).add(files["krea2_musubi_lora"], "a").compile(backend="eager", max_rank=8,
                                                                                   max_adapters=3)
        eager = Deck(fresh(KEY)).add(files["krea2_musubi_lora"], "a")
        assert (_one_step(compiled) - _one_step(eager)).abs().max() <= 1e-5
        frames = int(counters["frames"]["total"])
        for what, change in (("add + reweight", lambda d: d.add(files["krea2_aitoolkit_lora"], "b", model=0.7)
                                                  .set_weights("a", model=0.3)),
                             ("block weights", lambda d: d.set_weights_text("a: blocks.1=0, txtfusion=0.5")),
                             ("disable", lambda d: d.set_weights("b", enabled=False)),
                             ("remove + switch", lambda d: d.remove("a").set_adapters(["b"], [0.9])),
                             ("fuse", lambda d: d.fuse(names=["b"]))):
            change(compiled)
            change(eager)
            assert (_one_step(compiled) - _one_step(eager)).abs().max() <= 1e-4, what
            assert int(counters["frames"]["total"]) == frames, f"{what} recompiled"
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("name,family,base", [
    ("krea2_musubi_lora", "flux", "Krea 2"), ("krea2_aitoolkit_lora", "sd3", "Krea 2"),
    ("krea2_diffsynth_lora", "sd1", "Krea 2"), ("krea2_lycoris_lokr_simpletuner", "flux", "Krea 2"),
    ("flux_kohya_default", KEY, "Flux"), ("flux_bfl_prefix", KEY, "Flux"), ("sd3_kohya", KEY, "SD 3"),
    ("flux_aitoolkit", KEY, "Flux"),
])
def test_a_trainer_file_on_another_family_is_refused_with_its_base(name, family, base):
    file = path(name) if name.startswith(KEY) else str(FLAT / f"{name}.safetensors")
    pipe = fresh(family)
    before = _state(pipe)
    with pytest.raises(IncompatibleLoraError) as caught:
        Deck(pipe).add(file)
    assert base in str(caught.value)
    assert_bit_identical(before, _state(pipe))


def test_whole_parameter_differences_load_exactly(tmp_path):
    """A bias difference beside a LoRA (full training of a biased Linear: ``first``) sums into the bias."""
    extra = {"diffusion_model.first.diff_b": torch.linspace(-0.01, 0.01, 64).half()}
    check_parameter_difference(fresh(KEY), load_file(path("krea2_aitoolkit_lora")), extra,
                               ("transformer", "img_in.bias"), 0.7, tmp_path)


@pytest.mark.parametrize("extra,match", [
    # a modulation table on a module with none (Krea's mod.lin is a Linear; a diff_m names a table parameter)
    ({"diffusion_model.blocks.0.mod.lin.diff_m": torch.ones(384)},
     r"would apply only in part.*not in this pipeline \(e\.g\. transformer:blocks\.0\.mod\.lin\.modulation\)"),
    ({"diffusion_model.nothing_here.diff_b": torch.ones(64)}, r"would apply only in part"),
])
def test_parameter_differences_that_fit_nothing_are_refused_whole(extra, match, tmp_path):
    state = load_file(path("krea2_aitoolkit_lora"))
    out = tmp_path / "with_diff.safetensors"
    save_file({**state, **{k: v.half() for k, v in extra.items()}}, str(out))
    pipe = fresh(KEY)
    before = _state(pipe)
    with pytest.raises(LoraDeckError, match=match):
        Deck(pipe).add(str(out))
    assert_bit_identical(before, _state(pipe))


def test_a_krea2_checkpoint_is_named_not_unknown(tmp_path, use_models):
    from loradeck.nodes import NODE_CLASS_MAPPINGS

    (tmp_path / "checkpoints").mkdir()
    save_file({"txtfusion.projector.weight": torch.zeros(1, 12), "blocks.0.attn.wq.weight": torch.zeros(8, 8),
               "first.weight": torch.zeros(8, 64)}, str(tmp_path / "checkpoints" / "raw.safetensors"))
    use_models(str(tmp_path))
    # the Krea 2 markers without the rest of a denoiser (split files: tests/test_model_files_krea2.py)
    with pytest.raises(PipelineLoadError, match=r"'raw.safetensors' is a tiny Krea 2 \(built-in\) checkpoint, but "
                       r"its denoiser lacks blocks.0.attn.qknorm.qnorm.scale, which a tiny Krea 2 \(built-in\) "
                       r"denoiser has"):
        NODE_CLASS_MAPPINGS["LoadPipeline|LoRADeck"]().load("raw.safetensors", "float32")
