"""Running a pipeline under a stack: reconcile, then denoise, under the owner's lock.

Each family's pipeline keeps its own scheduler (flow matching for SD3/Flux, aMUSEd's masked
VQ tokens); only how the call is spelled differs, in the CALLS table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .owner import PipelineOwner
from .specs import GenerateParams, StackSpec

StepCallback = Callable[[int, int], None]  # (step done, total); may raise to cancel


def _common(p: GenerateParams) -> dict:
    return {"prompt": p.prompt, "num_inference_steps": int(p.steps), "guidance_scale": float(p.cfg),
            "width": int(p.width), "height": int(p.height), "num_images_per_prompt": int(p.batch_size),
            "generator": torch.Generator("cpu").manual_seed(int(p.seed)), "output_type": "np"}


def _step_end(on_step: StepCallback, total: int) -> dict:
    def callback(pipe, step, timestep, kwargs):
        on_step(step + 1, total)
        return kwargs

    return {"callback_on_step_end": callback}


def _diffusers(p: GenerateParams, on_step: StepCallback) -> dict:
    return {**_common(p), "negative_prompt": p.negative_prompt or None, **_step_end(on_step, int(p.steps))}


def _flux(p: GenerateParams, on_step: StepCallback) -> dict:
    # Flux takes cfg as its embedded guidance; it has no classic negative prompt.
    return {**_common(p), **_step_end(on_step, int(p.steps))}


def _amused(p: GenerateParams, on_step: StepCallback) -> dict:
    total = int(p.steps)
    return {**_common(p), "negative_prompt": p.negative_prompt or None,
            "callback": lambda step, timestep, latents: on_step(step + 1, total), "callback_steps": 1}


CALLS = {"diffusers": _diffusers, "flux": _flux, "amused": _amused}


def generate(owner: PipelineOwner, stack: StackSpec, params: GenerateParams,
             on_step: StepCallback | None = None, source: str = "", source_title: str = "") -> torch.Tensor:
    """Images as a float tensor [B, H, W, C] in 0..1 on the CPU (ComfyUI's IMAGE layout). ``source`` and
    ``source_title`` (the calling node) label the applied stack for the panel."""
    kwargs = CALLS[owner.family.call](params, on_step or (lambda step, total: None))
    with owner.lock, torch.inference_mode():
        owner.apply(stack, source, source_title)
        images = owner.pipe(**kwargs).images
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).clamp(0, 1)
