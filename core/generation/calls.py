"""How Generate's parameters become a diffusers pipeline call: the spellings families share.

A family's ``call(params, on_step)`` returns the keyword arguments of its pipeline's ``__call__``; most families
use ``diffusers_call``; the others build theirs from ``common`` and ``step_end`` in their own folder.
"""

from __future__ import annotations

from collections.abc import Callable

StepCallback = Callable[[int, int], None]  # (step done, total); may raise to cancel


def common(p) -> dict:
    """What every family's call takes: prompt, steps, guidance, size, batch, a CPU generator, numpy output."""
    import torch

    return {"prompt": p.prompt, "num_inference_steps": int(p.steps), "guidance_scale": float(p.cfg),
            "width": int(p.width), "height": int(p.height), "num_images_per_prompt": int(p.batch_size),
            "generator": torch.Generator("cpu").manual_seed(int(p.seed)), "output_type": "np"}


def step_end(on_step: StepCallback, total: int) -> dict:
    """diffusers' ``callback_on_step_end`` reporting each finished step to ``on_step``."""
    def callback(pipe, step, timestep, kwargs):
        # _num_timesteps is what the loop runs: fewer with denoise < 1, more with 2nd-order solvers
        on_step(step + 1, int(getattr(pipe, "_num_timesteps", 0) or total))
        return kwargs

    return {"callback_on_step_end": callback}


def diffusers_call(p, on_step: StepCallback) -> dict:
    """The usual spelling: ``common`` + a negative prompt + step callbacks (SD, SDXL, SD3)."""
    return {**common(p), "negative_prompt": p.negative_prompt or None, **step_end(on_step, int(p.steps))}
