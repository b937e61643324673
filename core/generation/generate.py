"""Running a pipeline under a stack: reconcile, then denoise, under the owner's lock.

Each family's pipeline keeps its own scheduler (flow matching for SD3/Flux, aMUSEd's masked VQ tokens)
unless the run names another (models/schedulers.py); only how the call is spelled differs: each family's
``call`` (generation/calls.py has the common spellings). With an image (img2img) or an image and a mask
(inpainting) the run uses diffusers' own pipeline class for that mode (``Family.img2img``/``inpaint``), made
with ``from_pipe``: it shares the loaded pipeline's modules, so the LoRA stack applied to them is the one it
denoises with.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..adapters.owner import PipelineOwner
from ..errors import SpecError
from ..models import schedulers
from ..models.family import EDIT, IMG2IMG, MODES, Family
from ..stacks.schedules import position
from ..stacks.specs import GenerateParams, StackSpec
from . import infotext, prompt_tags
from .calls import StepCallback
from .image_inputs import Source, make_source, mode_of, pil_images
from .output_checks import check_images

SIZE_KEYS = ("width", "height")  # img2img pipelines without them take the size from the image
# steps diffusers' img2img/inpainting pipelines run for ``steps`` and ``denoise`` (see Family.denoise_steps)
DENOISE_STEPS = {"floor": lambda steps, denoise: int(steps * denoise),
                 "rest": lambda steps, denoise: steps - int(steps - steps * denoise)}


def source_kwargs(source: Source, p: GenerateParams, mode: str = IMG2IMG, pil: bool = False,
                  references: bool = False) -> dict:
    """What an img2img/inpainting call adds: the image, its size, denoise as diffusers' strength, the mask; an
    edit call takes the image and its size only. ``pil`` (edit classes, which read the image's ``.size`` and
    resize it themselves): the image as a PIL image; ``references`` (an edit with reference images): the images as
    a list of PIL reference images."""
    width, height = source.size
    image = source.pil_images()[0] if pil else source.image
    if mode == EDIT and references:
        image = pil_images(source.image)
    extra = {"image": image, "width": width, "height": height}
    if mode != EDIT:
        extra["strength"] = float(p.denoise)
    if source.mask is not None:
        extra["mask_image"] = source.mask
    return extra


@dataclass(frozen=True, eq=False)
class Run:
    """One checked Generate call: which diffusers class, which scheduler, which arguments."""

    class_name: str
    scheduler: object | None  # a new scheduler for this run; None = the pipeline's own
    kwargs: dict


def _check(family: Family, p: GenerateParams, source: Source | None, mode: str, loaded: str) -> None:
    if not family.variant(mode, loaded):
        modes = ", ".join(m for m in MODES if family.variant(m, loaded))
        extra = "the mask" if source is not None and source.mask is not None else "the image"
        raise SpecError(f"{family.title} pipelines have no {mode} in diffusers (they run: {modes}); "
                        f"disconnect {extra}")
    schedulers.check_fits(family, p.scheduler, mode)
    if mode == EDIT:
        if p.denoise < 1:
            raise SpecError(f"denoise {p.denoise:g}: {family.title} edits the whole image by the prompt (it takes no "
                            "denoise); set denoise to 1")
    elif source is None:
        if p.denoise < 1:
            raise SpecError(f"denoise {p.denoise:g} needs an image to start from (img2img); text-to-image "
                            "always denoises fully, so connect an image or set denoise to 1")
        return
    elif p.denoise <= 0 or DENOISE_STEPS[family.denoise_steps](int(p.steps), p.denoise) < 1:
        raise SpecError(f"denoise {p.denoise:g} with {p.steps} steps leaves no step to run on {family.title} "
                        "(diffusers runs about steps x denoise of them); raise steps or denoise")
    references = mode == EDIT and family.edit_references  # the batch is the references of one edit
    if source is not None and source.batch > 1 and not references and family.edits(family.variant(mode, loaded)):
        raise SpecError(f"an edit takes one image; the image holds a batch of {source.batch}: edit them one at "
                        "a time")
    if source is not None and source.batch > 1 and p.batch_size > 1 and not references:
        raise SpecError(f"batch_size must be 1 when the image holds a batch of {source.batch} (each image gives "
                        "one output); got batch_size {p.batch_size}")


def plan(owner: PipelineOwner, params: GenerateParams, image=None, mask=None,
         on_step: StepCallback | None = None) -> Run:
    """Check everything about a run (SpecError) without touching the pipeline."""
    family = owner.family
    source = make_source(image, mask, family.pixel_multiple(owner.pipe))
    loaded = type(owner.pipe).__name__
    mode = family.mode(mode_of(source), loaded)
    _check(family, params, source, mode, loaded)
    kwargs = family.call(params, on_step or (lambda step, total: None))
    class_name = family.variant(mode, loaded)
    if source is not None:
        kwargs.update(source_kwargs(source, params, mode, pil=family.edits(class_name),
                                    references=family.edit_references))
        if mode == EDIT and family.edit_references:  # the batch is the references of one edit
            _check_references(owner.pipe, kwargs["image"])
        elif source.batch > 1:  # one prompt per image
            kwargs["prompt"] = [params.prompt] * source.batch
            if kwargs.get("negative_prompt"):
                kwargs["negative_prompt"] = [kwargs["negative_prompt"]] * source.batch
    scheduler = schedulers.build(family, params.scheduler, owner.pipe.scheduler, int(params.seed))
    return Run(class_name, scheduler, kwargs)


def _check_references(pipe, images) -> None:
    """An edit's reference images checked as its pipeline will (FLUX.2: each side >= 64 px, aspect <= 8), before
    anything is applied."""
    check = getattr(getattr(pipe, "image_processor", None), "check_image_input", None)
    for image in images if callable(check) else ():
        try:
            check(image)
        except ValueError as exc:
            raise SpecError(f"image: {exc} ({type(pipe).__name__} takes it as the reference of an edit)") from None


def pipeline_for(owner: PipelineOwner, run: Run):
    """The owner's pipeline itself, or diffusers' class for the run's mode sharing its modules (from_pipe),
    with a scheduler of its own, so the owner's scheduler is never changed."""
    pipe, scheduler = owner.pipe, run.scheduler
    if scheduler is None and type(pipe).__name__ == run.class_name:
        return pipe
    import diffusers

    if scheduler is None:  # the model default, as a fresh object (img2img leaves begin-index state behind)
        scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    variant = _sharing(getattr(diffusers, run.class_name)).from_pipe(pipe, scheduler=scheduler)
    variant.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))
    return variant


@functools.cache
def _sharing(cls):
    """``cls`` whose ``to()`` moves nothing. diffusers' from_pipe ends with ``new_pipeline.to(dtype=...)``
    (float32 unless told): on the shared modules that would cast the owner's float16 model, or the float32
    VAE of a mixed-precision one, and warn on every run. A variant lives for one call and owns nothing."""
    return type(cls.__name__, (cls,), {"to": lambda self, *args, **kwargs: self, "__module__": cls.__module__,
                                       "__doc__": cls.__doc__})


def _call(pipe, kwargs: dict) -> dict:
    accepted = inspect.signature(type(pipe).__call__).parameters
    return {k: v for k, v in kwargs.items() if k not in SIZE_KEYS or k in accepted}


def scheduled_steps(write: Callable[[float], None], on_step: StepCallback | None) -> StepCallback:
    """A step callback that first calls ``write(t)`` with the position of the next step (strength schedules:
    the scale writes happen between steps), then reports the step as ``on_step`` would."""
    def step(done: int, total: int) -> None:
        if done < total:
            write(position(done, total))
        if on_step is not None:
            on_step(done, total)

    return step


def to_image(images) -> torch.Tensor:
    """diffusers' numpy output -> ComfyUI's IMAGE: float32 [B, H, W, C] in 0..1 on the CPU."""
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).clamp(0, 1)


@dataclass(frozen=True, eq=False)
class Generation:
    """What one Generate made: the images, the stack they were made with (prompt tags added) and their
    A1111 parameters text (also recorded in the runtime's ``image_info`` for the savers)."""

    images: torch.Tensor
    stack: StackSpec
    parameters: str


def run(owner: PipelineOwner, stack: StackSpec, params: GenerateParams, on_step: StepCallback | None = None,
        image=None, mask=None, locate: prompt_tags.Locate | None = None, source: str = "",
        source_title: str = "") -> Generation:
    """``generate`` with what it made: see there. ``locate(name, hashes)`` finds prompt tags' files (default:
    the runtime's LoRA folders); ``source`` and ``source_title`` (the calling node) label the applied stack for
    the panel."""
    stack, prompt = prompt_tags.resolve(owner, stack, params.prompt, locate)
    scheduled = stack.scheduled
    if scheduled:
        on_step = scheduled_steps(lambda t: owner.write_step(stack, t), on_step)
    checked = plan(owner, replace(params, prompt=prompt), image, mask, on_step)
    with owner.lock, torch.inference_mode():
        owner.apply(stack, source, source_title)
        try:
            pipe = pipeline_for(owner, checked)
            raw = pipe(**_call(pipe, checked.kwargs)).images
        finally:
            if scheduled:  # back to the first step's strengths: what the applied stack and its snapshot say
                owner.write_step(stack, 0.0)
    check_images(raw, stack)  # before clamping, which would hide an infinity
    images = to_image(raw)
    text = infotext.parameters(params.prompt, params.negative_prompt, params, stack, owner,
                               (images.shape[2], images.shape[1]))
    owner.runtime.image_info.remember(images, text)
    return Generation(images, stack, text)


def generate(owner: PipelineOwner, stack: StackSpec, params: GenerateParams,
             on_step: StepCallback | None = None, image=None, mask=None,
             locate: prompt_tags.Locate | None = None, source: str = "", source_title: str = "") -> torch.Tensor:
    """Images as a float tensor [B, H, W, C] in 0..1 on the CPU (ComfyUI's IMAGE layout).

    ``image`` (ComfyUI IMAGE, [B, H, W, C] in 0..1) makes it img2img with ``params.denoise`` as the
    strength; ``mask`` too (ComfyUI MASK, 1 = repaint) makes it inpainting. The output then has the
    image's size (centre-cropped to the model's grid); ``width``/``height`` only apply to text-to-image.
    ``<lora:...>`` tags in the prompt add their files for this run (found with ``locate``); strength
    schedules in the stack are written between steps. ``source`` and ``source_title`` (the calling node) label
    the applied stack for the panel.
    """
    return run(owner, stack, params, on_step, image, mask, locate, source, source_title).images

