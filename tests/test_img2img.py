"""img2img and inpainting for every family against diffusers' own Img2Img/Inpaint classes called directly,
without and with a LoRA stack (loaded by diffusers' own loaders), fused and unfused; Cancel in every variant."""

from __future__ import annotations

import copy
import functools
import inspect

import diffusers
import pytest
import torch

from family_fixtures import SAVED_TEXT_ENCODERS, diffusers_reference, fresh
from helpers import spec
from lora_fixtures import save_family_lora
from loradeck.core import Deck, GenerateParams, StackSpec, generate
from loradeck.core.families import FAMILIES
from loradeck.core.models.family import IMG2IMG, INPAINT
from loradeck.core.stacks.stack_ops import fuse

KEYS = [key for key, family in FAMILIES.items() if family.img2img]  # families with diffusers' img2img classes
WITHOUT = [key for key, family in FAMILIES.items() if not family.img2img]  # refused by name (Wan: video)
TOLERANCE = 2 / 255
PARAMS = GenerateParams("a photo of a cat", "blurry", seed=7, steps=3, cfg=4.0, width=64, height=64)
IMAGE = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(2))  # ComfyUI IMAGE layout
MASK = torch.zeros(1, 64, 64)  # ComfyUI MASK: 1 = repaint
MASK[:, 8:40, 16:56] = 1
CASES = [(IMG2IMG, 0.5), (IMG2IMG, 0.9), (INPAINT, 1.0)]
WEIGHTS = {"first": (0.7, 0.4), "second": (-0.5, 1.0)}  # model, clip


@functools.cache
def _sd3_16():

    pipe = FAMILIES["sd3"].tiny(latent_channels=16)  # diffusers' SD3 inpainting takes 16 (or 33) channels only
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pipeline(key: str):
    """A fresh tiny pipeline of the family (SD3 on the real model's 16 latent channels)."""
    return copy.deepcopy(_sd3_16()) if key == "sd3" else fresh(key)


def _ids(cases):
    return [f"{mode}-{denoise}" for mode, denoise in cases]


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    root = tmp_path_factory.mktemp("variant_loras")
    return {key: {name: save_family_lora(key, str(root / f"{key}_{name}.safetensors"), seed=i + 1)
                  for i, name in enumerate(WEIGHTS)} for key in KEYS}


def _stack(owner, files: dict) -> StackSpec:
    stack = StackSpec()
    for name, (model, clip) in WEIGHTS.items():
        stack = stack.add(spec(owner, files[name], name, model, clip))
    return stack


def _direct_class(class_name: str, pipe):
    """diffusers' class built directly from a pipeline's components (no from_pipe), its own scheduler."""
    cls = getattr(diffusers, class_name)
    accepted = inspect.signature(cls.__init__).parameters
    components = {k: v for k, v in pipe.components.items() if k in accepted}
    components["scheduler"] = type(pipe.scheduler).from_config(pipe.scheduler.config)
    extra = {"requires_safety_checker": False} if "requires_safety_checker" in accepted else {}
    variant = cls(**components, **extra)
    variant.set_progress_bar_config(disable=True)
    return variant


@pytest.fixture(scope="module")
def references(loras):
    """Per family: diffusers' img2img and inpaint classes on the base model and on the model with both LoRAs
    loaded by diffusers' own methods (component-level for aMUSEd, which has no pipeline-level ones)."""
    out = {}
    for key in KEYS:
        family = FAMILIES[key]
        weights = {n: {family.denoiser: m, **{e: c for e in SAVED_TEXT_ENCODERS[key]}} for n, (m, c) in
                   WEIGHTS.items()}
        pipes = {"base": pipeline(key), "lora": diffusers_reference(key, loras[key], weights, pipeline(key))}
        out[key] = {(which, mode): _direct_class(family.variant(mode), pipe)
                    for which, pipe in pipes.items() for mode in (IMG2IMG, INPAINT)}
    return out


def direct(key: str, pipe, mode: str, denoise: float) -> torch.Tensor:
    """A user's direct call: the same prompt, seed, image (as a [B, C, H, W] 0..1 tensor) and mask."""
    kwargs = {"prompt": PARAMS.prompt, "num_inference_steps": PARAMS.steps, "guidance_scale": PARAMS.cfg,
              "generator": torch.Generator("cpu").manual_seed(PARAMS.seed), "output_type": "np",
              "image": IMAGE.permute(0, 3, 1, 2), "strength": denoise}
    if key != "flux":
        kwargs["negative_prompt"] = PARAMS.negative_prompt
    if "height" in inspect.signature(type(pipe).__call__).parameters:  # else diffusers takes the image's size
        kwargs.update(height=64, width=64)
    if mode == INPAINT:
        kwargs["mask_image"] = MASK[:, None]
    with torch.inference_mode():
        return torch.from_numpy(pipe(**kwargs).images.copy())


@pytest.fixture(scope="module")
def expected(references):
    return {(key, which, mode, denoise): direct(key, references[key][(which, mode)], mode, denoise)
            for key in KEYS for which in ("base", "lora") for mode, denoise in CASES}


def _ours(owner, stack, mode, denoise):
    params = GenerateParams(**{**vars(PARAMS), "denoise": denoise})
    return generate(owner, stack, params, image=IMAGE, mask=MASK if mode == INPAINT else None)


def _close(key: str, ours: torch.Tensor, reference: torch.Tensor, fused: bool = False) -> None:
    assert ours.shape == reference.shape == (1, 64, 64, 3)
    if key == "amused" and fused:  # discrete VQ tokens: a fused weight's last-bit change may flip a few
        assert (ours - reference).abs().gt(TOLERANCE).float().mean() < 0.05
    else:
        assert (ours - reference).abs().max() <= TOLERANCE


@pytest.mark.parametrize("key", KEYS)
def test_variants_equal_diffusers_own_classes_with_and_without_a_lora_stack(key, loras, expected):
    owner = Deck(pipeline(key)).owner
    stack = _stack(owner, loras[key])
    for which, wanted, fused in (("base", StackSpec(), False), ("lora", stack, False), ("lora", fuse(stack), True)):
        outputs = {}
        for mode, denoise in CASES:
            outputs[mode, denoise] = ours = _ours(owner, wanted, mode, denoise)
            _close(key, ours, expected[key, which, mode, denoise], fused)
        assert not torch.equal(outputs[CASES[0]], outputs[CASES[1]])  # denoise matters
    base, lora = expected[key, "base", IMG2IMG, 0.9], expected[key, "lora", IMG2IMG, 0.9]
    assert (base - lora).abs().max() > 0.02  # the LoRA changes the picture


class Cancelled(Exception):
    """Stands in for a host's cancel."""


def _raise_at(step_to_fail: int, seen: list):
    def on_step(step: int, total: int) -> None:
        seen.append((step, total))
        if len(seen) >= step_to_fail:
            raise Cancelled

    return on_step


@pytest.mark.parametrize("key", KEYS)
def test_cancel_stops_every_variant_at_a_step(key):
    owner = Deck(pipeline(key)).owner
    for mask in (None, MASK):
        seen = []
        with pytest.raises(Cancelled):
            generate(owner, StackSpec(), GenerateParams(**{**vars(PARAMS), "denoise": 0.9}), _raise_at(1, seen),
                     image=IMAGE, mask=mask)
        assert len(seen) == 1 and seen[0][0] <= seen[0][1] <= PARAMS.steps


@pytest.mark.parametrize("key", WITHOUT)
def test_a_family_without_img2img_refuses_the_image_and_mask_by_name(key):
    """No img2img or inpainting class in diffusers (Wan's video-to-video pipeline drops the low-noise expert):
    an image on its text-to-image(-video) built-in and an image with a mask are refused, nothing changes."""
    from loradeck.core import SpecError

    owner = Deck(pipeline(key)).owner
    before = {k: v.clone() for k, v in owner.pipe.transformer.state_dict().items()}
    params = GenerateParams(**{**vars(PARAMS), "num_frames": 5} if FAMILIES[key].frames else vars(PARAMS))
    with pytest.raises(SpecError, match="no inpainting in diffusers"):
        generate(owner, StackSpec(), params, image=IMAGE, mask=MASK)
    with pytest.raises(SpecError, match="cannot start from an image|no img2img in diffusers"):
        generate(owner, StackSpec(), params, image=IMAGE)
    assert all(torch.equal(v, owner.pipe.transformer.state_dict()[k]) for k, v in before.items())


def test_a_cancelled_variant_leaves_the_pipeline_consistent(loras):
    key = "sd1"
    owner = Deck(pipeline(key)).owner
    stack = fuse(_stack(owner, loras[key]))
    with pytest.raises(Cancelled):
        generate(owner, stack, GenerateParams(**{**vars(PARAMS), "denoise": 0.9}), _raise_at(1, []),
                 image=IMAGE, mask=MASK)
    assert torch.equal(_ours(owner, stack, INPAINT, 1.0), _ours(Deck(pipeline(key)).owner, stack, INPAINT, 1.0))


def test_an_image_batch_gives_one_output_per_image():
    owner = Deck(pipeline("sd1")).owner
    batch = torch.cat([IMAGE, IMAGE.flip(1)])
    params = GenerateParams(**{**vars(PARAMS), "denoise": 0.5})
    both = generate(owner, StackSpec(), params, image=batch, mask=MASK)
    assert both.shape == (2, 64, 64, 3) and not torch.equal(both[0], both[1])
    wide = generate(owner, StackSpec(), params, image=torch.rand(1, 64, 72, 3))
    assert wide.shape == (1, 64, 72, 3)  # the image's size, not width x height
