"""img2img and inpainting for every family against diffusers' own Img2Img/Inpaint classes called directly,
without and with a LoRA stack (loaded by diffusers' own loaders), fused and unfused; Cancel in every variant.
FLUX.2 has no img2img class: an image without a mask is the reference of an edit (its text-to-image class's
``image``), checked the same way; a mode a family lacks is refused by name."""

from __future__ import annotations

import copy
import functools
import inspect

import diffusers
import pytest
import torch

from family_fixtures import CFG_KEYWORD, SAVED_TEXT_ENCODERS, diffusers_guidance, diffusers_reference, fresh
from helpers import spec
from lora_fixtures import save_family_lora
from loradeck.core import Deck, GenerateParams, SpecError, StackSpec, generate
from loradeck.core.families import FAMILIES
from loradeck.core.models.family import EDIT, IMG2IMG, INPAINT
from loradeck.core.stacks.stack_ops import fuse

KEYS = [key for key, family in FAMILIES.items() if family.img2img and family.inpaint]
TXT2IMG_ONLY = [key for key in FAMILIES if key not in KEYS]  # diffusers has no img2img/inpainting class for them
TOLERANCE = 2 / 255
PARAMS = GenerateParams("a photo of a cat", "blurry", seed=7, steps=3, cfg=4.0, width=64, height=64)
IMAGE = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(2))  # ComfyUI IMAGE layout
MASK = torch.zeros(1, 64, 64)  # ComfyUI MASK: 1 = repaint
MASK[:, 8:40, 16:56] = 1
CASES = [(IMG2IMG, 0.5), (IMG2IMG, 0.9), (INPAINT, 1.0)]
# FLUX.2: no img2img in diffusers, an image without a mask is an edit's reference (always denoise 1); [dev] has no
# inpainting class either
FAMILY_CASES = {"flux2": [(EDIT, 1.0), (INPAINT, 0.5), (INPAINT, 1.0)], "flux2dev": [(EDIT, 1.0)]}
WEIGHTS = {"first": (0.7, 0.4), "second": (-0.5, 1.0)}  # model, clip


@functools.cache
def _sd3_16():

    pipe = FAMILIES["sd3"].tiny(latent_channels=16)  # diffusers' SD3 inpainting takes 16 (or 33) channels only
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pipeline(key: str):
    """A fresh tiny pipeline of the family (SD3 on the real model's 16 latent channels)."""
    return copy.deepcopy(_sd3_16()) if key == "sd3" else fresh(key)


def cases(key: str) -> list[tuple[str, float]]:
    return FAMILY_CASES.get(key, CASES)


def modes(key: str) -> list[str]:
    return list(dict.fromkeys(mode for mode, _ in cases(key)))


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
                    for which, pipe in pipes.items() for mode in modes(key)}
    return out


def direct(key: str, pipe, mode: str, denoise: float) -> torch.Tensor:
    """A user's direct call: the same prompt, seed, image (as a [B, C, H, W] 0..1 tensor) and mask."""
    kwargs = {"prompt": PARAMS.prompt, "num_inference_steps": PARAMS.steps,
              CFG_KEYWORD.get(key, "guidance_scale"): diffusers_guidance(key, PARAMS.cfg),
              "generator": torch.Generator("cpu").manual_seed(PARAMS.seed), "output_type": "np",
              "image": IMAGE.permute(0, 3, 1, 2), "strength": denoise}
    accepted = inspect.signature(type(pipe).__call__).parameters
    if mode == EDIT:  # reference images: PIL only, 8 bits per channel; no strength
        from PIL import Image

        kwargs["image"] = [Image.fromarray((IMAGE[0].numpy() * 255).round().astype("uint8"))]
        del kwargs["strength"]
    if "negative_prompt" in accepted:  # Flux and FLUX.2 have no classic negative prompt
        kwargs["negative_prompt"] = PARAMS.negative_prompt
    if "height" in accepted:  # else diffusers takes the image's size
        kwargs.update(height=64, width=64)
    if mode == INPAINT:
        kwargs["mask_image"] = MASK[:, None]
    with torch.inference_mode():
        return torch.from_numpy(pipe(**kwargs).images.copy())


@pytest.fixture(scope="module")
def expected(references):
    return {(key, which, mode, denoise): direct(key, references[key][(which, mode)], mode, denoise)
            for key in KEYS for which in ("base", "lora") for mode, denoise in cases(key)}


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
        for mode, denoise in cases(key):
            outputs[mode, denoise] = ours = _ours(owner, wanted, mode, denoise)
            _close(key, ours, expected[key, which, mode, denoise], fused)
        if len(cases(key)) > 1:
            assert not torch.equal(outputs[cases(key)[-2]], outputs[cases(key)[-1]])  # denoise matters
    for mode, denoise in cases(key):
        base, lora = expected[key, "base", mode, denoise], expected[key, "lora", mode, denoise]
        assert (base - lora).abs().max() > 0.02, mode  # the LoRA changes the picture
    if EDIT in modes(key):  # the reference conditions the edit: another image gives another picture (the random
        other = generate(owner, StackSpec(), PARAMS, image=IMAGE.flip(1))  # tiny model barely looks at it)
        assert (other - _ours(owner, StackSpec(), EDIT, 1.0)).abs().max() > 1e-4


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
    for mode in modes(key):
        seen, denoise = [], 1.0 if mode == EDIT else 0.9
        with pytest.raises(Cancelled):
            generate(owner, StackSpec(), GenerateParams(**{**vars(PARAMS), "denoise": denoise}), _raise_at(1, seen),
                     image=IMAGE, mask=MASK if mode == INPAINT else None)
        assert len(seen) == 1 and seen[0][0] <= seen[0][1] <= PARAMS.steps


@pytest.mark.parametrize("key", TXT2IMG_ONLY)
def test_a_family_without_the_classes_refuses_the_mode_by_name_and_changes_nothing(key, tmp_path):
    family = FAMILIES[key]
    owner = Deck(pipeline(key)).owner
    stack = StackSpec().add(spec(owner, save_family_lora(key, str(tmp_path / "lora.safetensors"), seed=1), "a",
                                 1.0, 1.0))
    denoiser = getattr(owner.pipe, family.denoiser)
    before = owner.applied, owner.loaded_keys, {k: v.clone() for k, v in denoiser.state_dict().items()}
    for mask, mode in ((None, IMG2IMG), (MASK, INPAINT)):
        message = (rf"^{family.title} pipelines have no {mode} in diffusers \(they run: text-to-image\); "
                   rf"disconnect the {'mask' if mask is not None else 'image'}$")
        with pytest.raises(SpecError, match=message):
            generate(owner, stack, GenerateParams(**{**vars(PARAMS), "denoise": 0.5}), image=IMAGE, mask=mask)
    after = owner.applied, owner.loaded_keys, denoiser.state_dict()
    assert before[:2] == after[:2] and before[2].keys() == after[2].keys()
    assert all(torch.equal(before[2][k], after[2][k]) for k in before[2])


@pytest.mark.parametrize("key,denoise,mask,match", [
    ("flux2", 0.6, None, r"denoise 0.6: FLUX.2 \[klein\] edits .*set denoise to 1"),
    ("flux2dev", 0.6, None, r"denoise 0.6: FLUX.2 \[dev\] edits .*set denoise to 1"),
    ("flux2dev", 1.0, MASK, r"FLUX.2 \[dev\] pipelines have no inpainting in diffusers \(they run: text-to-image, "
                            r"edit\); disconnect the mask"),
])
def test_a_mode_the_family_lacks_is_refused_by_name_and_changes_nothing(key, denoise, mask, match, loras):
    owner = Deck(pipeline(key)).owner
    stack = _stack(owner, loras[key])
    before = owner.applied, owner.loaded_keys, owner.pipe.scheduler
    with pytest.raises(SpecError, match=match):
        generate(owner, stack, GenerateParams(**{**vars(PARAMS), "denoise": denoise}), image=IMAGE, mask=mask)
    assert (owner.applied, owner.loaded_keys, owner.pipe.scheduler) == before  # nothing was applied
    with pytest.raises(SpecError, match=r"image: Image too small: 48×48.*at least 64px \(Flux2\w*Pipeline takes it "
                                        r"as the reference of an edit\)"):  # as diffusers' edit checks it, before
        generate(owner, stack, PARAMS, image=IMAGE[:, :48, :48])
    assert (owner.applied, owner.loaded_keys, owner.pipe.scheduler) == before  # nothing was applied


def test_an_edit_takes_a_batch_as_its_references():
    """Every image of the batch is one reference of the same edit (diffusers' image list); batch_size is free."""
    owner = Deck(pipeline("flux2")).owner
    batch = torch.cat([IMAGE, IMAGE.flip(1)])
    params = GenerateParams(**{**vars(PARAMS), "batch_size": 2})
    both = generate(owner, StackSpec(), params, image=batch)
    one = generate(owner, StackSpec(), params, image=IMAGE)
    assert both.shape == one.shape == (2, 64, 64, 3) and not torch.equal(both, one)


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
