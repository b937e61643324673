"""Qwen-Image and Qwen-Image-Edit (issue 26): every LoRA layout its trainers write loads exactly, and Generate runs
its text-to-image, img2img, inpainting and edit pipelines as diffusers does.

tests/fixtures/trainers/qwenimage/ holds files made by the trainers' own network code (musubi-tuner, ai-toolkit,
DiffSynth-Studio, LyCORIS, diffusers' training script; Lightning's layout by hand) for the built-in tiny
transformer, each with ``.expected.safetensors``: the trainer's own merge (merged - original, float32). Every
trainer names modules as diffusers does, so the expected deltas are keyed by diffusers weight names.

Edit pipelines encode the input image at about 1024 x 1024 (VAE) whatever the output size, which takes seconds on
the tiny model; the edit tests shrink that area (a constant of diffusers' pipeline modules) for LoRA Deck's run and
diffusers' alike, so they compare the same code at a small size.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from pathlib import Path

import diffusers
import pytest
import torch
from safetensors.torch import load_file, save_file

from family_fixtures import PARAMS, fresh, render
from helpers import assert_bit_identical, check_parameter_difference, spec
from loradeck.core import Deck, GenerateParams, IncompatibleLoraError, LoraDeckError, SpecError, StackSpec, generate
from loradeck.core.families import BUILTIN_NAMES, FAMILIES
from loradeck.core.families.qwenimage import processor as qwen_processor
from loradeck.core.families.qwenimage import tiny
from loradeck.core.families.qwenimage.schedulers import LIGHTNING, LIGHTNING_NAME, QWEN_SCHEDULER_CONFIG
from loradeck.core.generation.image_inputs import make_source
from loradeck.core.stacks.stack_ops import fuse

KEY = "qwenimage"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "trainers" / KEY
MANIFEST = json.loads((FIXTURES / "MANIFEST.json").read_text())
NAMES = sorted(p.name.removesuffix(".expected.safetensors") for p in FIXTURES.glob("*.expected.safetensors"))
# what diffusers 0.42.1's load_lora_weights makes of each file (checked in tools/fixtures/generators/qwenimage/
# verify_output.txt and below): loads it exactly / refuses it (LoKr, LoHa) / applies both alphas
DIFFUSERS_EXACT = ("qwen_aitoolkit_lora", "qwen_diffsynth_lora", "qwen_diffusers_all_alpha8", "qwen_diffusers_default",
                   "qwen_lightning_bf16", "qwen_lightning_fp32", "qwen_musubi_convert_comfy",
                   "qwen_musubi_convert_diffusers", "qwen_musubi_lora", "qwen_musubi_lora_bf16")
DIFFUSERS_REFUSES = ("qwen_aitoolkit_lokr", "qwen_lycoris_loha", "qwen_lycoris_lokr_simpletuner", "qwen_musubi_loha",
                     "qwen_musubi_lokr")
TWO_ALPHAS = "qwen_musubi_from_diffusers_toplevel"
TOLERANCE = 1e-3  # relative, per module
STRONG = 3.0  # the fixtures' factors are small: images are compared at this strength, where each LoRA shows
IMAGE_TOLERANCE = 2 / 255


def _file(name: str) -> str:
    return str(FIXTURES / f"{name}.safetensors")


def _weights(pipe) -> dict[str, torch.Tensor]:
    return {k.replace(".base_layer", ""): v.detach().float().clone()
            for k, v in pipe.transformer.state_dict().items() if "lora_" not in k}


def test_the_fixtures_are_the_manifests():
    assert sorted(Path(f).name for f in MANIFEST["files"]) == [f"{n}.safetensors" for n in NAMES]
    assert len(NAMES) == 16 and set(DIFFUSERS_EXACT) | set(DIFFUSERS_REFUSES) | {TWO_ALPHAS} == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_fused_delta_equals_the_trainers_own_merge(name):
    expected = load_file(str(FIXTURES / f"{name}.expected.safetensors"))
    pipe = fresh(KEY)
    before = _weights(pipe)
    deck = Deck(pipe).add(_file(name))
    report = deck.owner.prepare(_file(name)).report
    assert report.matched == report.total == len(expected) and not report.partial
    deck.fuse()
    after = _weights(pipe)
    errors = {key: float((after[key] - before[key] - want.float()).norm() / want.float().norm().clamp_min(1e-12))
              for key, want in expected.items()}
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, (worst, errors[worst])
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed <= set(expected), f"modules the trainer did not touch changed: {sorted(changed - set(expected))}"


@functools.cache
def _base_image() -> torch.Tensor:
    return render(KEY, fresh(KEY))


@pytest.mark.parametrize("name", DIFFUSERS_EXACT)
def test_where_diffusers_loads_a_file_images_and_weights_equal_diffusers(name):
    ours, theirs = fresh(KEY), fresh(KEY)
    deck = Deck(ours).add(_file(name), name="x", model=STRONG)
    theirs.load_lora_weights(_file(name), adapter_name="x")
    theirs.set_adapters(["x"], [STRONG])
    image = render(KEY, ours)
    assert (image - render(KEY, theirs)).abs().max() <= IMAGE_TOLERANCE
    assert (image - _base_image()).abs().max() > 2 * IMAGE_TOLERANCE  # the LoRA visibly changes the picture
    deck.set_weights("x", model=1.0).fuse()
    theirs.set_adapters(["x"], [1.0])
    theirs.fuse_lora(adapter_names=["x"])
    mine, reference = _weights(ours), _weights(theirs)
    for key, value in reference.items():
        assert torch.allclose(mine[key], value, rtol=1e-5, atol=1e-6), key


def test_diffusers_refuses_lokr_and_loha_which_load_here():
    for name in DIFFUSERS_REFUSES:
        with pytest.raises(ValueError, match="state_dict"):
            fresh(KEY).load_lora_weights(_file(name))


def test_the_alpha_key_wins_over_the_configs_alpha_as_musubi_means(tmp_path):
    """musubi's convert_lora --target default keeps the diffusers file's lora_adapter_metadata (lora_alpha 8, r 4)
    and writes .alpha = rank: musubi applies .alpha only (its .expected); diffusers applies both (twice the change).
    LoRA Deck takes the .alpha key, in the kohya layout and in a dotted one alike."""
    from loradeck.core.files.reading import read_metadata

    path = _file(TWO_ALPHAS)
    config = json.loads(read_metadata(path)["lora_adapter_metadata"])
    assert config["transformer.lora_alpha"] == 8 and config["transformer.r"] == 4
    expected = load_file(str(FIXTURES / f"{TWO_ALPHAS}.expected.safetensors"))
    theirs = fresh(KEY)
    before = _weights(theirs)
    theirs.load_lora_weights(path)
    theirs.fuse_lora()
    key = "transformer_blocks.0.attn.to_q.weight"
    assert torch.allclose(_weights(theirs)[key] - before[key], 2 * expected[key], rtol=1e-4, atol=1e-7)
    # the same tensors under dotted (diffusers) names with .alpha keys and the same config
    dotted = {}
    for k, v in load_file(path).items():
        stem, _, part = k.partition(".")
        name = next(n for n in _dotted_names() if n.replace(".", "_") == stem.removeprefix("lora_unet_"))
        dotted[f"transformer.{name}.{part}"] = v
    renamed = str(tmp_path / "dotted.safetensors")
    save_file(dotted, renamed, metadata=read_metadata(path))
    for file in (path, renamed):
        ours = fresh(KEY)
        Deck(ours).add(file).fuse()
        for k, want in expected.items():
            delta = _weights(ours)[k] - before[k]
            assert float((delta - want).norm() / want.norm()) < TOLERANCE, (file, k)


@functools.cache
def _dotted_names() -> tuple[str, ...]:
    return tuple(n for n, m in fresh(KEY).transformer.named_modules() if isinstance(m, torch.nn.Linear))


def test_lightning_runs_with_its_scheduler_in_four_steps_without_cfg():
    """How a user runs a Qwen-Image-Lightning LoRA: strength 1, the "FlowMatch Euler shift 3 (Lightning)"
    scheduler, 4 (or 8) steps, cfg 1. Equals diffusers with Lightning's README scheduler config."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    params = GenerateParams("a photo of a cat", "", seed=3, steps=4, cfg=1.0, width=64, height=64,
                            scheduler=LIGHTNING_NAME)
    deck = Deck(fresh(KEY)).add(_file("qwen_lightning_bf16"), name="lightning")
    ours = generate(deck.owner, deck.stack, params)
    reference = fresh(KEY)
    reference.load_lora_weights(_file("qwen_lightning_bf16"))
    readme = {**QWEN_SCHEDULER_CONFIG, "base_shift": math.log(3), "max_shift": math.log(3), "shift_terminal": None}
    assert {k: readme[k] for k in LIGHTNING} == LIGHTNING
    reference.scheduler = FlowMatchEulerDiscreteScheduler.from_config(readme)
    with torch.inference_mode():
        theirs = reference(prompt=params.prompt, true_cfg_scale=1.0, num_inference_steps=4, width=64, height=64,
                           generator=torch.Generator().manual_seed(3), output_type="np").images
    assert (ours - torch.from_numpy(theirs)).abs().max() <= IMAGE_TOLERANCE
    one = generate(deck.owner, deck.stack, GenerateParams(**{**vars(params), "steps": 1}))
    assert torch.isfinite(one).all()  # no terminal stretch: one step runs


def test_one_step_with_the_terminal_stretch_is_refused_by_name():
    owner = Deck(fresh(KEY)).owner
    with pytest.raises(SpecError, match=r"1 step with the 'model default' scheduler gives a NaN image on Qwen-Image"):
        generate(owner, StackSpec(), GenerateParams(**{**vars(PARAMS), "steps": 1}))
    with pytest.raises(SpecError, match="FlowMatch Euler shift 3"):
        generate(owner, StackSpec(), GenerateParams(**{**vars(PARAMS), "steps": 1, "scheduler": "FlowMatch Euler"}))


def test_cfg_is_true_cfg_with_a_space_for_an_empty_negative_prompt():
    family = FAMILIES[KEY]
    kwargs = family.call(GenerateParams("x", "", cfg=4.0), lambda step, total: None)
    assert (kwargs["true_cfg_scale"], kwargs["negative_prompt"]) == (4.0, " ") and "guidance_scale" not in kwargs
    assert family.call(GenerateParams("x", "blurry", cfg=1.0), lambda s, t: None)["negative_prompt"] is None
    pipe = fresh(KEY)
    ours = generate(Deck(pipe).owner, StackSpec(), GenerateParams(**{**vars(PARAMS), "negative_prompt": ""}))
    with torch.inference_mode():
        theirs = fresh(KEY)(prompt=PARAMS.prompt, negative_prompt=" ", true_cfg_scale=4.0, num_inference_steps=3,
                            width=64, height=64, generator=torch.Generator().manual_seed(3), output_type="np").images
    assert torch.equal(ours, torch.from_numpy(theirs))


def test_strength_clip_has_nothing_to_change_and_block_ranges_name_transformer_blocks():
    path = _file("qwen_musubi_lora")
    a, b = fresh(KEY), fresh(KEY)
    Deck(a).add(path, "x", model=0.7, clip=0.0)
    Deck(b).add(path, "x", model=0.7, clip=1.0)
    assert torch.equal(render(KEY, a), render(KEY, b))
    assert not any(hasattr(m, "lora_A") for m in a.text_encoder.modules())
    deck = Deck(fresh(KEY)).add(path, "x").set_weights_text("x: transformer_blocks.1-1=0.5")
    (view,) = deck.active()
    assert view.blocks == "transformer_blocks.1-1=0.5"
    layers = {n: m for n, m in deck.pipe.transformer.named_modules() if hasattr(m, "scaling")}
    (adapter,) = {k for m in layers.values() for k in m.scaling}
    assert layers["transformer_blocks.0.img_mod.1"].scaling[adapter] == pytest.approx(0.5)  # alpha 2 / rank 4
    assert layers["transformer_blocks.1.img_mod.1"].scaling[adapter] == pytest.approx(0.25)


def test_prompt_tags_equal_the_same_stack(tmp_path, use_models):
    loras = tmp_path / "loras"
    loras.mkdir()
    (loras / "musubi.safetensors").write_bytes(Path(_file("qwen_musubi_lora")).read_bytes())
    use_models(str(tmp_path))
    tagged = generate(Deck(fresh(KEY)).owner, StackSpec(),
                      GenerateParams(**{**vars(PARAMS), "prompt": f"{PARAMS.prompt} <lora:musubi:0.6>"}))
    deck = Deck(fresh(KEY)).add(str(loras / "musubi.safetensors"), "musubi", model=0.6, clip=0.6)
    assert torch.equal(tagged, generate(deck.owner, deck.stack, PARAMS))


def test_compile_envelope_has_no_recompiles_and_equals_eager():
    import torch._dynamo
    from torch._dynamo.utils import counters

    def transformer(deck):
        gen = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            return deck.pipe.transformer(hidden_states=torch.randn(2, 16, 64, generator=gen),
                                         encoder_hidden_states=torch.randn(2, 7, 32, generator=gen),
                                         encoder_hidden_states_mask=torch.ones(2, 7, dtype=torch.long),
                                         timestep=torch.tensor([0.5, 0.5]), img_shapes=[[(1, 4, 4)]] * 2,
                                         return_dict=False)[0]

    torch._dynamo.reset()
    try:
        files = {n: _file(n) for n in ("qwen_musubi_lora", "qwen_lightning_fp32", "qwen_musubi_lokr")}
        compiled = Deck(fresh(KEY)).add(files["qwen_musubi_lora"], "a").compile(backend="eager", max_rank=16,
                                                                              max_adapters=3)
        eager = Deck(fresh(KEY)).add(files["qwen_musubi_lora"], "a")
        assert (transformer(compiled) - transformer(eager)).abs().max() <= 1e-4
        frames = int(counters["frames"]["total"])
        for change in (lambda d: d.set_weights("a", model=0.3), lambda d: d.add(files["qwen_lightning_fp32"], "l"),
                       lambda d: d.set_weights("l", enabled=False, blocks={"transformer_blocks.0": 0.5}),
                       lambda d: d.add(files["qwen_musubi_lokr"], "k", model=0.7), lambda d: d.remove("a"),
                       lambda d: d.set_weights("l", enabled=True)):
            change(compiled)
            change(eager)
            assert (transformer(compiled) - transformer(eager)).abs().max() <= 1e-4
        assert int(counters["frames"]["total"]) == frames  # no recompile within the envelope
    finally:
        torch._dynamo.reset()


def test_the_snapshot_reads_the_stack_back():
    deck = Deck(fresh(KEY)).add(_file("qwen_musubi_lora"), "m", model=0.8, clip=0.5)
    deck.add(_file("qwen_aitoolkit_lokr"), "k").set_weights_text("m: transformer_blocks.0=0.25")
    deck.fuse(names=["k"])
    views = {v.name: v for v in deck.active()}
    assert (views["m"].state, views["k"].state) == ("active", "fused")
    assert dict(views["m"].weights) == {"transformer": 0.8}  # nothing of it is in the text encoder
    assert views["m"].blocks == "transformer_blocks.0=0.25"
    assert {c: (low, high) for c, low, high in views["m"].layer_strengths} == {"transformer": (0.2, 0.8)}


@pytest.mark.parametrize("extra,target", [
    ({"diffusion_model.transformer_blocks.0.attn.to_q.diff_b": torch.linspace(-0.01, 0.01, 32)},
     "transformer_blocks.0.attn.to_q.bias"),
    ({"diffusion_model.transformer_blocks.0.attn.norm_q.diff": torch.linspace(-0.01, 0.01, 16)},
     "transformer_blocks.0.attn.norm_q.weight"),
])
def test_whole_parameter_differences_load_exactly(extra, target, tmp_path):
    check_parameter_difference(fresh(KEY), load_file(_file("qwen_aitoolkit_lora")), extra, ("transformer", target),
                               0.8, tmp_path)


def test_a_parameter_difference_that_fits_nothing_is_refused_whole(tmp_path):
    path = str(tmp_path / "with_diff.safetensors")
    save_file({**load_file(_file("qwen_aitoolkit_lora")),
               "diffusion_model.transformer_blocks.0.img_mod.1.diff_m": torch.ones(192)}, path)
    pipe = fresh(KEY)
    before = _weights(pipe)
    with pytest.raises(LoraDeckError, match="has no parameter 'modulation'"):
        Deck(pipe).add(path)
    assert_bit_identical(before, _weights(pipe))


def test_a_single_file_qwen_image_without_its_parts_names_each_missing_part(tmp_path, use_models):
    """A Qwen-Image transformer alone (split files: tests/test_model_files_qwenimage.py) with no text encoder or VAE
    beside it: both named in one error, with the files to put where."""
    from loradeck.core import PipelineLoadError
    from loradeck.nodes import NODE_CLASS_MAPPINGS

    (tmp_path / "checkpoints").mkdir()
    tensors = {f"model.diffusion_model.{k}": v for k, v in fresh(KEY).transformer.state_dict().items()}
    save_file(tensors, str(tmp_path / "checkpoints" / "qwen_image.safetensors"))
    use_models(str(tmp_path))
    with pytest.raises(PipelineLoadError, match=r"is a tiny Qwen-Image \(built-in\) checkpoint, but it needs the "
                       r"Qwen2.5-VL-7B text encoder .*; and it needs a VAE .*qwen_image_vae.safetensors"):
        NODE_CLASS_MAPPINGS["LoadPipeline|LoRADeck"]().load("qwen_image.safetensors", "float32")


def test_a_qwen_file_on_flux_names_qwen_image():
    with pytest.raises(IncompatibleLoraError, match="Qwen-Image"):
        Deck(fresh("flux")).add(_file("qwen_musubi_lora"))


# -- edit models ----------------------------------------------------------------------------------------------------
SMALL_EDIT = 64 * 64  # the area edit pipelines encode the input at in these tests (diffusers: 1024 x 1024)
EDIT_IMAGE = torch.rand(1, 64, 48, 3, generator=torch.Generator().manual_seed(2))  # ComfyUI IMAGE layout
EDIT_PARAMS = GenerateParams("make it red", "", seed=7, steps=2, cfg=4.0, width=64, height=64)
EDIT_STRENGTHS = (("m", 2.5), ("k", -2.0))


@pytest.fixture
def small_edits(monkeypatch):
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit as edit
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_inpaint as edit_inpaint
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as plus

    monkeypatch.setattr(plus, "VAE_IMAGE_SIZE", SMALL_EDIT)
    for module in (edit, edit_inpaint):
        real = module.calculate_dimensions
        monkeypatch.setattr(module, "calculate_dimensions",
                            lambda area, ratio, real=real: real(min(area, SMALL_EDIT), ratio))


@functools.cache
def _edit_model():
    pipe = tiny.build_edit()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def edit_model():
    return copy.deepcopy(_edit_model())


def _direct_edit(pipe, image=EDIT_IMAGE, **extra) -> torch.Tensor:
    """A user's call of diffusers' edit pipeline: a PIL image, the prompt, true CFG with ' ', the image's size."""
    pil = make_source(image, None, 16).pil_images()[0]
    kwargs = {"image": pil, "prompt": EDIT_PARAMS.prompt, "negative_prompt": " ", "true_cfg_scale": EDIT_PARAMS.cfg,
              "num_inference_steps": EDIT_PARAMS.steps, "width": pil.size[0], "height": pil.size[1],
              "generator": torch.Generator().manual_seed(EDIT_PARAMS.seed), "output_type": "np", **extra}
    with torch.inference_mode():
        return torch.from_numpy(pipe(**kwargs).images.copy())


def test_the_edit_built_in_is_listed_and_loads(use_models, tmp_path):
    from loradeck.nodes import NODE_CLASS_MAPPINGS, host

    assert {"tiny-qwenimage (built-in)", "tiny-qwenimage-edit (built-in)"} <= set(BUILTIN_NAMES)
    use_models(str(tmp_path))
    assert "tiny-qwenimage-edit (built-in)" in host.diffusers_models()
    handle = NODE_CLASS_MAPPINGS["LoadPipeline|LoRADeck"]().load("tiny-qwenimage-edit (built-in)", "float32")[0]
    assert type(handle.owner.pipe).__name__ == "QwenImageEditPlusPipeline" and handle.owner.family.key == KEY
    assert_bit_identical(_weights(handle.owner.pipe), _weights(fresh(KEY)))  # the same weights as tiny-qwenimage


def test_an_image_edits_on_an_edit_model_as_diffusers_does_with_a_lora_stack(small_edits):
    owner = Deck(edit_model()).owner
    files = {"m": _file("qwen_musubi_lora"), "k": _file("qwen_musubi_lokr")}
    stack = StackSpec()
    for name, strength in EDIT_STRENGTHS:
        stack = stack.add(spec(owner, files[name], name, strength, 1.0))
    base = generate(owner, StackSpec(), EDIT_PARAMS, image=EDIT_IMAGE)
    assert base.shape == (1, 64, 48, 3)  # the image's size
    assert torch.equal(base, _direct_edit(edit_model()))
    reference = edit_model()
    with torch.no_grad():  # the trainers' own deltas at those strengths (diffusers cannot load LoKr)
        for name, strength in EDIT_STRENGTHS:
            for key, delta in load_file(str(FIXTURES / f"qwen_musubi_{'lora' if name == 'm' else 'lokr'}"
                                             ".expected.safetensors")).items():
                reference.transformer.get_parameter(key).add_(strength * delta)
    expected = _direct_edit(reference)
    for wanted in (stack, fuse(stack)):
        assert (generate(owner, wanted, EDIT_PARAMS, image=EDIT_IMAGE) - expected).abs().max() <= IMAGE_TOLERANCE
    assert (expected - base).abs().max() > 0.02
    unipc = GenerateParams(**{**vars(EDIT_PARAMS), "scheduler": "UniPC"})
    reference.scheduler = diffusers.UniPCMultistepScheduler.from_config(
        reference.scheduler.config, use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=1.0)
    assert (generate(owner, stack, unipc, image=EDIT_IMAGE) - _direct_edit(reference)).abs().max() <= IMAGE_TOLERANCE


def test_the_single_image_edit_class_and_the_other_modes_of_an_edit_model(small_edits):
    plus = _edit_model()
    single = diffusers.QwenImageEditPipeline(**copy.deepcopy(plus.components))
    single.set_progress_bar_config(disable=True)
    owner = Deck(single).owner
    assert owner.family.key == KEY
    ours = generate(owner, StackSpec(), EDIT_PARAMS, image=EDIT_IMAGE)
    assert torch.equal(ours, _direct_edit(copy.deepcopy(single)))
    # no image: text-to-image in diffusers' Qwen-Image class
    assert torch.equal(generate(owner, StackSpec(), PARAMS), render(KEY, fresh(KEY)))


def test_an_image_and_a_mask_edit_inside_the_mask_on_an_edit_model(small_edits):
    """QwenImageEditInpaintPipeline, from the loaded Edit Plus model's modules (and processor), with a LoRA stack;
    its output size is diffusers' own (about the conditioning area in the image's aspect ratio)."""
    owner = Deck(edit_model()).owner
    stack = StackSpec().add(spec(owner, _file("qwen_musubi_lora"), "m", STRONG, 1.0))
    mask = torch.zeros(1, 64, 48)
    mask[:, 8:40, 8:40] = 1
    inpaint = GenerateParams(**{**vars(EDIT_PARAMS), "denoise": 0.9, "steps": 3})
    reference = diffusers.QwenImageEditInpaintPipeline(**edit_model().components)
    reference.set_progress_bar_config(disable=True)
    with torch.no_grad():
        for key, delta in load_file(str(FIXTURES / "qwen_musubi_lora.expected.safetensors")).items():
            reference.transformer.get_parameter(key).add_(STRONG * delta)
    source = make_source(EDIT_IMAGE, mask, 16)
    with torch.inference_mode():
        theirs = reference(prompt=inpaint.prompt, negative_prompt=" ", true_cfg_scale=4.0,
                           image=source.pil_images()[0], mask_image=source.mask, strength=0.9, num_inference_steps=3,
                           generator=torch.Generator().manual_seed(7), output_type="np").images
    for wanted in (stack, fuse(stack)):
        ours = generate(owner, wanted, inpaint, image=EDIT_IMAGE, mask=mask)
        assert ours.shape == theirs.shape and (ours - torch.from_numpy(theirs)).abs().max() <= IMAGE_TOLERANCE
    with pytest.raises(SpecError, match="an edit takes one image; the image holds a batch of 2"):
        generate(owner, stack, inpaint, image=EDIT_IMAGE.repeat(2, 1, 1, 1), mask=mask)


@pytest.mark.parametrize("change,image,match", [
    ({"denoise": 0.5}, EDIT_IMAGE, "edits the whole image by the prompt.*set denoise to 1"),
    ({}, EDIT_IMAGE.repeat(2, 1, 1, 1), "an edit takes one image; the image holds a batch of 2"),
])
def test_edit_refusals_change_nothing(change, image, match):
    owner = Deck(edit_model()).owner
    with pytest.raises(SpecError, match=match):
        generate(owner, StackSpec(), GenerateParams(**{**vars(EDIT_PARAMS), **change}), image=image)
    assert owner.applied == StackSpec()


def _edit_folder(root: Path) -> Path:
    """A Qwen-Image-Edit-2509 folder as the Hub lays it out: model_index.json with a processor, processor/ with
    the tokenizer files and preprocessor_config.json."""
    folder = root / "diffusers" / "my-edit"
    fresh(KEY).save_pretrained(str(folder))
    index = json.loads((folder / "model_index.json").read_text())
    index.update(_class_name="QwenImageEditPlusPipeline", processor=["transformers", "Qwen2VLProcessor"])
    (folder / "model_index.json").write_text(json.dumps(index))
    made = qwen_processor.qwen_processor(tiny.tiny_qwen_tokenizer())
    made.tokenizer.save_pretrained(str(folder / "processor"))
    made.image_processor.save_pretrained(str(folder / "processor"))
    return folder


def test_a_saved_edit_folder_loads_without_torchvision(tmp_path, use_models, small_edits):
    from loradeck.core import PipelineLoadError
    from loradeck.nodes import NODE_CLASS_MAPPINGS

    folder = _edit_folder(tmp_path)
    with pytest.raises(ImportError, match="[Tt]orchvision"):  # what diffusers alone does here
        diffusers.DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    use_models(str(tmp_path))
    loader = NODE_CLASS_MAPPINGS["LoadPipeline|LoRADeck"]()
    handle = loader.load("my-edit", "float32")[0]
    pipe = handle.owner.pipe
    assert type(pipe).__name__ == "QwenImageEditPlusPipeline"
    assert type(pipe.processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    ours = generate(handle.owner, StackSpec(), EDIT_PARAMS, image=EDIT_IMAGE)
    made = qwen_processor.folder_components(str(folder), json.loads((folder / "model_index.json").read_text()))
    own = diffusers.DiffusionPipeline.from_pretrained(str(folder), local_files_only=True, **made)
    own.set_progress_bar_config(disable=True)
    assert torch.equal(ours, _direct_edit(own))  # exactly diffusers' own load, given the processor
    (folder / "processor" / "preprocessor_config.json").unlink()
    with pytest.raises(PipelineLoadError, match="no processor/preprocessor_config.json"):
        loader.load("my-edit", "bfloat16")
