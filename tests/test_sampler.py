"""Schedulers by name per family, checked against diffusers called directly; refusals change nothing."""

from __future__ import annotations

import copy
import math

import diffusers
import pytest
import torch

from family_fixtures import SAVED_TEXT_ENCODERS, TEST_FRAMES, diffusers_reference, for_family, fresh
from helpers import spec
from lora_fixtures import save_family_lora
from loradeck.core import Deck, GenerateParams, SpecError, StackSpec, generate
from loradeck.core.families import FAMILIES, family_for_class
from loradeck.core.families import SCHEDULER_CHOICES as CHOICES
from loradeck.core.generation.generate import output_images, pipeline_for, plan
from loradeck.core.generation.image_inputs import make_source
from loradeck.core.models.family import IMG2IMG, INPAINT, TXT2IMG
from loradeck.core.models.schedulers import DEFAULT, fitting
from loradeck.core.stacks.stack_ops import fuse

TOLERANCE = 2 / 255
PARAMS = GenerateParams("a photo of a cat", "blurry", seed=5, steps=3, cfg=4.0, width=64, height=64)

# Written out here, independently of core/schedulers.py: name -> (diffusers class, overrides).
EPSILON = {
    "Euler": ("EulerDiscreteScheduler", {}), "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}), "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}), "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++",
                                                            "use_karras_sigmas": True}),
    "DPM++ SDE": ("DPMSolverSDEScheduler", {"noise_sampler_seed": PARAMS.seed}),
    "DPM++ SDE Karras": ("DPMSolverSDEScheduler", {"noise_sampler_seed": PARAMS.seed, "use_karras_sigmas": True}),
    "DDIM": ("DDIMScheduler", {}), "DDPM": ("DDPMScheduler", {}),
    "PNDM": ("PNDMScheduler", {"skip_prk_steps": True}), "UniPC": ("UniPCMultistepScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {}), "LCM": ("LCMScheduler", {}),
}
FLOW_SIGMAS = {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 1.0}  # tiny: shift 1
EXPECTED = {
    "sd1": EPSILON, "sdxl": EPSILON,
    "sd3": {"FlowMatch Euler": ("FlowMatchEulerDiscreteScheduler", {}),
            "FlowMatch Heun": ("FlowMatchHeunDiscreteScheduler", {}),
            "DPM++ 2M": ("DPMSolverMultistepScheduler", FLOW_SIGMAS),
            "UniPC": ("UniPCMultistepScheduler", FLOW_SIGMAS)},
    "flux": {"FlowMatch Euler": ("FlowMatchEulerDiscreteScheduler", {}),
             "DPM++ 2M": ("DPMSolverMultistepScheduler", {**FLOW_SIGMAS, "use_dynamic_shifting": True}),
             "UniPC": ("UniPCMultistepScheduler", FLOW_SIGMAS)},
    "amused": {},
    # Wan's UniPC config carries flow_shift 3.0; the FlowMatch schedulers call it shift
    "wan": {"UniPC": ("UniPCMultistepScheduler", {**FLOW_SIGMAS, "flow_shift": 3.0}),
            "FlowMatch Euler": ("FlowMatchEulerDiscreteScheduler", {"shift": 3.0}),
            "FlowMatch Heun": ("FlowMatchHeunDiscreteScheduler", {"shift": 3.0}),
            "DPM++ 2M": ("DPMSolverMultistepScheduler", {**FLOW_SIGMAS, "flow_shift": 3.0}),
            "DEIS": ("DEISMultistepScheduler", {**FLOW_SIGMAS, "flow_shift": 3.0})},
}
TXT2IMG_ONLY = {"sd3": {"DPM++ 2M", "UniPC"}, "flux": {"DPM++ 2M", "UniPC"}}
CASES = [(key, name) for key, table in EXPECTED.items() for name in table]


@pytest.fixture(scope="module")
def owners():
    return {key: Deck(fresh(key)).owner for key in FAMILIES}


@pytest.fixture(scope="module")
def references():
    return {key: fresh(key) for key in FAMILIES}


def direct(key: str, pipe, params: GenerateParams = PARAMS, **extra) -> torch.Tensor:
    """diffusers' pipeline called as a user would, every argument spelled out here (a video's frames as images)."""
    kwargs = {"prompt": params.prompt, "num_inference_steps": params.steps, "guidance_scale": params.cfg,
              "generator": torch.Generator("cpu").manual_seed(params.seed), "output_type": "np", **extra}
    if key != "flux":  # Flux has no classic negative prompt
        kwargs["negative_prompt"] = params.negative_prompt
    if FAMILIES[key].frames:
        kwargs["num_frames"] = TEST_FRAMES
    with torch.inference_mode():
        return torch.from_numpy(output_images(pipe(**kwargs)).copy())


def direct_with(key: str, pipe, name: str) -> torch.Tensor:
    """``direct`` with diffusers' scheduler class for ``name`` (from EXPECTED) swapped in for the call."""
    cls, overrides = EXPECTED[key][name]
    original = pipe.scheduler
    pipe.scheduler = getattr(diffusers, cls).from_config(original.config, **overrides)
    try:
        return direct(key, pipe, width=64, height=64)
    finally:
        pipe.scheduler = original


def test_the_table_is_as_documented():
    for key, table in EXPECTED.items():
        family = FAMILIES[key]
        assert fitting(family, TXT2IMG) == (DEFAULT, *table), key
        for mode in (IMG2IMG, INPAINT):
            assert fitting(family, mode) == (DEFAULT, *(n for n in table if n not in TXT2IMG_ONLY.get(key, ()))), key
    assert set(CHOICES) == {DEFAULT, *(n for t in EXPECTED.values() for n in t)} and CHOICES[0] == DEFAULT


@pytest.mark.parametrize("key,name", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_each_scheduler_equals_diffusers_called_directly(key, name, owners, references):
    expected = direct_with(key, references[key], name)
    before = owners[key].pipe.scheduler
    ours = generate(owners[key], StackSpec(), for_family(key, GenerateParams(**{**vars(PARAMS), "scheduler": name})))
    assert (ours - expected).abs().max() <= TOLERANCE
    assert owners[key].pipe.scheduler is before  # the owner's scheduler is never replaced
    assert dict(before.config) == dict(references[key].scheduler.config)


LORA_CASES = [(key, name) for key, name in CASES if key != "amused"]
LORA_WEIGHTS = {"first": (0.7, 0.4), "second": (-0.5, 1.0)}  # model, clip


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    """Per family: two LoRA files, LoRA Deck's owner with them in a stack, and diffusers' own pipeline with the
    same files loaded and weighted by load_lora_weights + set_adapters."""
    root = tmp_path_factory.mktemp("scheduler_loras")
    out = {}
    for key in {k for k, _ in LORA_CASES}:
        files = {n: save_family_lora(key, str(root / f"{key}_{n}.safetensors"), seed=i + 1)
                 for i, n in enumerate(LORA_WEIGHTS)}
        family = FAMILIES[key]
        weights = {n: {family.denoiser: m, **{e: c for e in SAVED_TEXT_ENCODERS[key]}}
                   for n, (m, c) in LORA_WEIGHTS.items()}
        owner = Deck(fresh(key)).owner
        stack = StackSpec()
        for n, (m, c) in LORA_WEIGHTS.items():
            stack = stack.add(spec(owner, files[n], n, m, c))
        out[key] = owner, stack, diffusers_reference(key, files, weights)
    return out


@pytest.mark.parametrize("key,name", LORA_CASES, ids=[f"{k}-{n}" for k, n in LORA_CASES])
def test_each_scheduler_with_a_lora_stack_fused_and_unfused_equals_diffusers(key, name, stacked):
    owner, stack, reference = stacked[key]
    expected = direct_with(key, reference, name)
    params = for_family(key, GenerateParams(**{**vars(PARAMS), "scheduler": name}))
    assert (generate(owner, stack, params) - expected).abs().max() <= TOLERANCE
    assert (generate(owner, fuse(stack), params) - expected).abs().max() <= TOLERANCE
    assert (generate(owner, StackSpec(), params) - expected).abs().max() > TOLERANCE  # the stack matters


@pytest.mark.parametrize("key", list(FAMILIES))
def test_model_default_is_the_pipeline_itself(key, owners, references):
    ours = generate(owners[key], StackSpec(), for_family(key, PARAMS))
    assert torch.equal(ours, direct(key, references[key], width=64, height=64))


def _state(owner):
    return owner.applied, owner.loaded_keys, owner.pipe.scheduler, dict(owner.pipe.scheduler.config)


IMAGE = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(1))
MASK = torch.ones(1, 64, 64)


@pytest.mark.parametrize("key,scheduler,mode,match", [
    ("sd3", "Euler", TXT2IMG, r"'Euler' does not fit Stable Diffusion 3.*FlowMatch Euler, FlowMatch Heun"),
    ("flux", "FlowMatch Heun", TXT2IMG, r"does not fit Flux pipelines; the ones that do: model default, FlowMatch"),
    ("amused", "Euler a", IMG2IMG, r"does not fit aMUSEd pipelines; the ones that do: model default$"),
    ("sd1", "FlowMatch Euler", INPAINT, r"does not fit Stable Diffusion 1.x/2.x.*Euler a, Heun"),
    ("sd3", "DPM++ 2M", IMG2IMG, r"runs Stable Diffusion 3 text-to-image only \(.*scale_noise.*\); for img2img "
                                 r"choose one of: model default, FlowMatch Euler, FlowMatch Heun$"),
    ("flux", "UniPC", INPAINT, r"text-to-image only.*for inpainting choose one of: model default, FlowMatch Euler$"),
])
def test_an_unfitting_scheduler_is_refused_by_name_and_changes_nothing(key, scheduler, mode, match, owners, files):
    owner = owners[key]
    before = _state(owner)
    image = None if mode == TXT2IMG else IMAGE
    mask = MASK if mode == INPAINT else None
    params = GenerateParams(**{**vars(PARAMS), "scheduler": scheduler, "denoise": 1.0})
    stack = StackSpec()
    if key == "sd1":  # a stack that would have loaded a LoRA: nothing may load
        stack = stack.add(spec(owner, files["a"], "a", 1.0, 1.0))
    with pytest.raises(SpecError, match=match):
        generate(owner, stack, params, image=image, mask=mask)
    assert _state(owner) == before


@pytest.mark.parametrize("change,match", [
    ({"denoise": 1.5}, "denoise must be between 0 and 1"), ({"denoise": -0.1}, "denoise must be between 0 and 1"),
    ({"denoise": math.nan}, "denoise must be between 0 and 1"), ({"denoise": "lots"}, "denoise must be a number"),
    ({"scheduler": "Euler A"}, r"scheduler 'Euler A' is unknown; choose one of: model default, Euler, Euler a"),
])
def test_bad_params_are_spec_errors(change, match):
    with pytest.raises(SpecError, match=match):
        GenerateParams(**{**vars(PARAMS), **change})


@pytest.mark.parametrize("params,image,mask,match", [
    (PARAMS, None, MASK, "mask given without an image.*connect the image"),
    (GenerateParams(**{**vars(PARAMS), "denoise": 0.5}), None, None, "denoise 0.5 needs an image to start from"),
    (GenerateParams(**{**vars(PARAMS), "denoise": 0.2}), IMAGE, None, "denoise 0.2 with 3 steps leaves no step"),
    (GenerateParams(**{**vars(PARAMS), "denoise": 0.0}), IMAGE, None, "denoise 0 with 3 steps leaves no step"),
    (GenerateParams(**{**vars(PARAMS), "batch_size": 2}), IMAGE.repeat(2, 1, 1, 1), None,
     "batch_size must be 1 when the image holds a batch of 2"),
    (PARAMS, IMAGE.repeat(3, 1, 1, 1), MASK.repeat(2, 1, 1), "a batch of 2 masks does not fit a batch of 3 images"),
    (PARAMS, IMAGE[..., 0], None, r"image: expected \[batch, height, width, channels\]"),
    (PARAMS, IMAGE, torch.ones(1, 1, 1, 64, 64), r"mask: expected \[height, width\] or \[batch, height, width\]"),
    (PARAMS, torch.ones(1, 4, 4, 3), None, "4x4 is smaller than this model's 8-pixel grid"),
    (PARAMS, IMAGE * math.nan, None, "image: holds NaN"),
])
def test_bad_inputs_are_clear_errors_and_change_nothing(params, image, mask, match, owners, files):
    owner = owners["sd1"]
    before = _state(owner)
    stack = StackSpec().add(spec(owner, files["a"], "a", 1.0, 1.0))
    with pytest.raises(SpecError, match=match):
        generate(owner, stack, params, image=image, mask=mask)
    assert _state(owner) == before


def test_image_is_cropped_like_vae_encode_and_the_mask_resized_to_it():
    image = torch.rand(2, 70, 67, 3)
    mask = torch.zeros(1, 35, 33)
    mask[:, :, 20:] = 1
    source = make_source(image, mask, 8)
    assert source.size == (64, 64) and source.mode == INPAINT
    assert torch.equal(source.image, image.permute(0, 3, 1, 2)[:, :, 3:67, 1:65])  # centred: (70 % 8) // 2 = 3
    assert source.mask.shape == (1, 1, 64, 64)
    assert source.mask[..., :30].max() == 0 and source.mask[..., -10:].min() == 1
    grey = make_source(torch.rand(64, 64, 1), torch.ones(64, 64), 16)
    assert grey.image.shape == (1, 3, 64, 64) and grey.mask.shape == (1, 1, 64, 64)
    assert make_source(None, None, 8) is None


WITH_IMG2IMG = [key for key, family in FAMILIES.items() if family.img2img]  # Wan: in test_family_wan.py


@pytest.mark.parametrize("key", WITH_IMG2IMG)
def test_variants_share_the_owners_modules_and_leave_its_dtype(key):
    pipe = fresh(key)
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.to(torch.bfloat16)  # diffusers' from_pipe casts to float32 unless stopped
    owner = Deck(pipe).owner
    family = owner.family
    for mode, image, mask in ((IMG2IMG, IMAGE, None), (INPAINT, IMAGE, MASK)):
        run = plan(owner, GenerateParams(**{**vars(PARAMS), "denoise": 0.5}), image, mask)
        variant = pipeline_for(owner, run)
        assert type(variant).__name__ == family.variant(mode)
        assert isinstance(variant, getattr(diffusers, family.variant(mode)))
        for name, module in pipe.components.items():
            if isinstance(module, torch.nn.Module):
                assert getattr(variant, name) is module, name
                assert module.dtype == torch.bfloat16, name
        assert variant.scheduler is not pipe.scheduler


@pytest.mark.parametrize("key", WITH_IMG2IMG)
def test_the_python_api_takes_every_pipeline_class_of_a_family(key):
    family = FAMILIES[key]
    assert {family_for_class(c).key for c in family.classes} == {key}
    base = fresh(key)
    img2img = getattr(diffusers, family.img2img)(**{k: v for k, v in copy.deepcopy(base).components.items()
                                                     if k in _init_params(family.img2img)})
    img2img.set_progress_bar_config(disable=True)
    deck = Deck(img2img)
    assert deck.owner.family is family
    ours = generate(deck.owner, StackSpec(), PARAMS)  # text-to-image from an img2img pipeline
    assert (ours - direct(key, base, width=64, height=64)).abs().max() <= TOLERANCE


def _init_params(class_name: str) -> set[str]:
    import inspect

    return set(inspect.signature(getattr(diffusers, class_name).__init__).parameters)


def test_an_image_edits_on_an_edit_model_or_where_the_family_only_edits():
    from dataclasses import replace

    from loradeck.core.models.family import EDIT

    sd1 = FAMILIES["sd1"]
    qwen_like = replace(sd1, edit="EditPipeline", edit_models=("EditPipeline", "EditPlusPipeline"))
    assert qwen_like.mode(IMG2IMG, "StableDiffusionPipeline") == IMG2IMG  # a t2i model: img2img
    assert qwen_like.mode(IMG2IMG, "EditPlusPipeline") == EDIT  # an edit model: the image is to be edited
    assert qwen_like.variant(EDIT, "EditPlusPipeline") == "EditPlusPipeline"  # in its own class
    assert qwen_like.mode(INPAINT, "EditPlusPipeline") == INPAINT
    klein_like = replace(sd1, img2img="", edit="StableDiffusionPipeline")  # edits with reference images
    assert klein_like.mode(IMG2IMG, "StableDiffusionPipeline") == EDIT
    assert klein_like.variant(EDIT) == "StableDiffusionPipeline"
    assert sd1.mode(IMG2IMG, "StableDiffusionPipeline") == IMG2IMG and sd1.variant(EDIT) == ""
    assert "EditPlusPipeline" in qwen_like.classes and len(set(klein_like.classes)) == len(klein_like.classes)
