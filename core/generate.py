"""Running a pipeline under a stack: reconcile, then denoise, under the owner's lock."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .owner import PipelineOwner
from .specs import GenerateParams, StackSpec

StepCallback = Callable[[int, int], None]  # (step done, total); may raise to cancel


def generate(owner: PipelineOwner, stack: StackSpec, params: GenerateParams,
             on_step: StepCallback | None = None) -> torch.Tensor:
    """Images as a float tensor [B, H, W, C] in 0..1 on the CPU (ComfyUI's IMAGE layout)."""

    def callback(pipe, step, timestep, kwargs):
        if on_step is not None:
            on_step(step + 1, int(params.steps))
        return kwargs

    with owner.lock, torch.inference_mode():
        owner.apply(stack)
        result = owner.pipe(
            prompt=params.prompt,
            negative_prompt=params.negative_prompt or None,
            num_inference_steps=int(params.steps),
            guidance_scale=float(params.cfg),
            width=int(params.width),
            height=int(params.height),
            num_images_per_prompt=int(params.batch_size),
            generator=torch.Generator("cpu").manual_seed(int(params.seed)),
            output_type="pt",
            callback_on_step_end=callback,
        )
    return result.images.float().permute(0, 2, 3, 1).clamp(0, 1).cpu().contiguous()
