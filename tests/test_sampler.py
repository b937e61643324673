"""Schedulers by name per family, checked against diffusers called directly; refusals change nothing."""

from __future__ import annotations

import copy
import inspect
import math

import diffusers
import numpy as np
import pytest
import torch

from family_fixtures import CFG_KEYWORD, SAVED_TEXT_ENCODERS, diffusers_guidance, diffusers_reference, fresh
from helpers import spec
from lora_fixtures import save_family_lora
from loradeck.core import Deck, GenerateParams, SpecError, StackSpec, generate
from loradeck.core.families import FAMILIES, family_for_class
from loradeck.core.families import SCHEDULER_CHOICES as CHOICES
from loradeck.core.generation.generate import pipeline_for, plan
from loradeck.core.generation.image_inputs import make_source
from loradeck.core.models.family import EDIT, IMG2IMG, INPAINT, TXT2IMG
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
# FLUX.2's scheduler config: shift 3, dynamic shifting (its pipelines pass mu)
FLUX2 = {"FlowMatch Euler": ("FlowMatchEulerDiscreteScheduler", {}),
         **{name: (cls, {**FLOW_SIGMAS, "flow_shift": 3.0, "use_dynamic_shifting": True})
            for name, cls in (("DPM++ 2M", "DPMSolverMultistepScheduler"), ("UniPC", "UniPCMultistepScheduler"),
                              ("DEIS", "DEISMultistepScheduler"))}}
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
    "chroma": {"FlowMatch Euler": ("FlowMatchEulerDiscreteScheduler", {}),
               "UniPC": ("UniPCMultistepScheduler", FLOW_SIGMAS)},
    "krea2": {"FlowMatch Euler": ("FlowMatchEulerDiscreteScheduler", {}),
              "UniPC": ("UniPCMultistepScheduler", FLOW_SIGMAS)},
    "qwenimage": {"FlowMatch Euler": ("FlowMatchEulerDiscreteScheduler", {}),
                  "FlowMatch Euler shift 3 (Lightning)": (  # Qwen-Image-Lightning's README: shift 3 everywhere
                      "FlowMatchEulerDiscreteScheduler", {"base_shift": math.log(3), "max_shift": math.log(3),
                                                          "shift_terminal": None, "use_dynamic_shifting": True,
                                                          "time_shift_type": "exponential"}),
                  "UniPC": ("UniPCMultistepScheduler", FLOW_SIGMAS)},
    "zimage": {"FlowMatch Euler": ("FlowMatchEulerDiscreteScheduler", {}),
               "UniPC": ("UniPCMultistepScheduler", {**FLOW_SIGMAS, "flow_shift": 3.0})},  # Turbo's shift 3
    "flux2": FLUX2, "flux2dev": FLUX2,
}
TXT2IMG_ONLY = {"sd3": {"DPM++ 2M", "UniPC"}, "flux": {"DPM++ 2M", "UniPC"}, "chroma": {"UniPC"},
                "krea2": {"UniPC"}, "qwenimage": {"UniPC"}, "zimage": {"UniPC"},
                "flux2": {"DPM++ 2M", "UniPC", "DEIS"}, "flux2dev": {"DPM++ 2M", "UniPC", "DEIS"}}
EDITS = ("flux2", "flux2dev")  # an edit runs the text-to-image class: every scheduler of the table fits it
WITH_VARIANTS = [key for key, family in FAMILIES.items() if family.img2img and family.inpaint]
# arguments a user adds to the call for a scheduler: Z-Image's pipeline hands UniPC its sigmas as a list, which
# UniPC cannot scale; the same sigmas (linspace(1, 1/steps, steps)) as an array run
CALL_EXTRA = {("zimage", "UniPC"): {"sigmas": np.array(torch.linspace(1.0, 1 / PARAMS.steps, PARAMS.steps).tolist())}}
CASES = [(key, name) for key, table in EXPECTED.items() for name in table]


@pytest.fixture(scope="module")
def owners():
    return {key: Deck(fresh(key)).owner for key in FAMILIES}


@pytest.fixture(scope="module")
def references():
    return {key: fresh(key) for key in FAMILIES}


def direct(key: str, pipe, params: GenerateParams = PARAMS, **extra) -> torch.Tensor:
    """diffusers' pipeline called as a user would, every argument spelled out here."""
    kwargs = {"prompt": params.prompt, "num_inference_steps": params.steps,
              CFG_KEYWORD.get(key, "guidance_scale"): diffusers_guidance(key, params.cfg),
              "generator": torch.Generator("cpu").manual_seed(params.seed), "output_type": "np", **extra}
    if "negative_prompt" in inspect.signature(type(pipe).__call__).parameters:  # Flux, FLUX.2: no negative prompt
        kwargs["negative_prompt"] = params.negative_prompt
    with torch.inference_mode():
        return torch.from_numpy(pipe(**kwargs).images.copy())


def direct_with(key: str, pipe, name: str) -> torch.Tensor:
    """``direct`` with diffusers' scheduler class for ``name`` (from EXPECTED) swapped in for the call."""
    cls, overrides = EXPECTED[key][name]
    original = pipe.scheduler
    pipe.scheduler = getattr(diffusers, cls).from_config(original.config, **overrides)
    try:
        return direct(key, pipe, width=64, height=64, **CALL_EXTRA.get((key, name), {}))
    finally:
        pipe.scheduler = original


def test_the_table_is_as_documented():
    for key, table in EXPECTED.items():
        family = FAMILIES[key]
        assert fitting(family, TXT2IMG) == (DEFAULT, *table), key
        for mode in (IMG2IMG, INPAINT):
            assert fitting(family, mode) == (DEFAULT, *(n for n in table if n not in TXT2IMG_ONLY.get(key, ()))), key
        if key in EDITS:
            assert fitting(family, EDIT) == (DEFAULT, *table), key
    assert set(CHOICES) == {DEFAULT, *(n for t in EXPECTED.values() for n in t)} and CHOICES[0] == DEFAULT


@pytest.mark.parametrize("key,name", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_each_scheduler_equals_diffusers_called_directly(key, name, owners, references):
    expected = direct_with(key, references[key], name)
    before = owners[key].pipe.scheduler
    ours = generate(owners[key], StackSpec(), GenerateParams(**{**vars(PARAMS), "scheduler": name}))
    assert (ours - expected).abs().max() <= TOLERANCE
    assert owners[key].pipe.scheduler is before  # the owner's scheduler is never replaced
    assert dict(before.config) == dict(references[key].scheduler.config)


# FLUX.2 [dev] runs klein's transformer, schedulers and LoRA path: its schedulers are checked without a stack; klein's
# with one on a FlowMatch and a multistep solver (DEIS and UniPC take the same flow-sigma path as DPM++ 2M)
LORA_CASES = [(key, name) for key, name in CASES
              if key not in ("amused", "flux2dev") and (key != "flux2" or name in ("FlowMatch Euler", "DPM++ 2M"))]
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
    params = GenerateParams(**{**vars(PARAMS), "scheduler": name})
    assert (generate(owner, stack, params) - expected).abs().max() <= TOLERANCE
    assert (generate(owner, fuse(stack), params) - expected).abs().max() <= TOLERANCE
    assert (generate(owner, StackSpec(), params) - expected).abs().max() > TOLERANCE  # the stack matters


@pytest.mark.parametrize("key", list(FAMILIES))
def test_model_default_is_the_pipeline_itself(key, owners, references):
    ours = generate(owners[key], StackSpec(), PARAMS)
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
    # Chroma's pipelines always pass their own sigmas, which diffusers' DPM solver refuses (Flux's entry is out)
    ("chroma", "DPM++ 2M", TXT2IMG, r"does not fit Chroma pipelines; the ones that do: model default, "
                                    r"FlowMatch Euler, UniPC$"),
    ("chroma", "UniPC", IMG2IMG, r"text-to-image only.*for img2img choose one of: model default, FlowMatch Euler$"),
    ("krea2", "DPM++ 2M", TXT2IMG, r"'DPM\+\+ 2M' does not fit Krea 2 pipelines; the ones that do: model default, "
                                   r"FlowMatch Euler, UniPC$"),
    ("krea2", "FlowMatch Heun", TXT2IMG, r"does not fit Krea 2 pipelines"),
    ("qwenimage", "DPM++ 2M", TXT2IMG, r"'DPM\+\+ 2M' does not fit Qwen-Image pipelines; the ones that do: model "
                                       r"default, FlowMatch Euler, FlowMatch Euler shift 3 \(Lightning\), UniPC$"),
    ("qwenimage", "UniPC", IMG2IMG, r"runs Qwen-Image text-to-image, edit only \(.*scale_noise.*\); for img2img "
                                    r"choose one of: model default, FlowMatch Euler, FlowMatch Euler shift 3"),
    ("zimage", "DPM++ 2M", TXT2IMG, r"does not fit Z-Image pipelines; the ones that do: model default, FlowMatch "
                                    r"Euler, UniPC$"),
    ("zimage", "UniPC", IMG2IMG, r"runs Z-Image text-to-image only.*for img2img choose one of: model default, "
                                 r"FlowMatch Euler$"),
    ("flux2", "UniPC", INPAINT, r"'UniPC' runs FLUX.2 \[klein\] text-to-image, edit only \(.*scale_noise.*\); for "
                                r"inpainting choose one of: model default, FlowMatch Euler$"),
    ("flux2dev", "FlowMatch Heun", EDIT, r"'FlowMatch Heun' does not fit FLUX.2 \[dev\] pipelines; the ones that "
                                         r"do: model default, FlowMatch Euler, DPM\+\+ 2M, UniPC, DEIS$"),
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


@pytest.mark.parametrize("key", WITH_VARIANTS)
def test_variants_share_the_owners_modules_and_leave_its_dtype(key):
    pipe = fresh(key)
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.to(torch.bfloat16)  # diffusers' from_pipe casts to float32 unless stopped
    owner = Deck(pipe).owner
    family = owner.family
    for mode, image, mask in ((family.mode(IMG2IMG, type(pipe).__name__), IMAGE, None), (INPAINT, IMAGE, MASK)):
        if not family.variant(mode):  # FLUX.2 [dev] has no inpainting class (refused: test_img2img)
            continue
        denoise = 1.0 if mode == EDIT else 0.5  # an edit always denoises fully
        run = plan(owner, GenerateParams(**{**vars(PARAMS), "denoise": denoise}), image, mask)
        variant = pipeline_for(owner, run)
        assert type(variant).__name__ == family.variant(mode)
        assert isinstance(variant, getattr(diffusers, family.variant(mode)))
        for name, module in pipe.components.items():
            if isinstance(module, torch.nn.Module):
                assert getattr(variant, name) is module, name
                assert module.dtype == torch.bfloat16, name
        if type(pipe).__name__ == family.variant(mode):  # an edit in the text-to-image class: the pipeline itself
            assert variant is pipe
        else:
            assert variant.scheduler is not pipe.scheduler


@pytest.mark.parametrize("key", WITH_VARIANTS)
def test_the_python_api_takes_every_pipeline_class_of_a_family(key):
    family = FAMILIES[key]
    assert {family_for_class(c).key for c in family.classes} == {key}
    base = fresh(key)
    other = family.img2img or family.inpaint or family.pipeline_classes[-1]  # FLUX.2: its inpainting class
    img2img = getattr(diffusers, other)(**{k: v for k, v in copy.deepcopy(base).components.items()
                                           if k in _init_params(other)})
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
    assert qwen_like.variant(INPAINT, "EditPlusPipeline") == sd1.inpaint  # no edit_inpaint: the family's inpaint
    masked = replace(qwen_like, edit_inpaint="EditInpaintPipeline")  # an edit model edits inside the mask
    assert masked.variant(INPAINT, "EditPlusPipeline") == "EditInpaintPipeline"
    assert masked.variant(INPAINT, "StableDiffusionPipeline") == sd1.inpaint
    assert masked.edits("EditInpaintPipeline") and not masked.edits(sd1.inpaint)
    klein_like = replace(sd1, img2img="", edit="StableDiffusionPipeline")  # edits with reference images
    assert klein_like.mode(IMG2IMG, "StableDiffusionPipeline") == EDIT
    assert klein_like.variant(EDIT) == "StableDiffusionPipeline"
    assert sd1.mode(IMG2IMG, "StableDiffusionPipeline") == IMG2IMG and sd1.variant(EDIT) == ""
    assert "EditPlusPipeline" in qwen_like.classes and len(set(klein_like.classes)) == len(klein_like.classes)
