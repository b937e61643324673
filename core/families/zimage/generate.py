"""How Generate calls a Z-Image pipeline.

Z-Image's pipelines compute ``pos + g * (pos - neg)`` and run classifier-free guidance only when ``g > 0``, so
diffusers' ``guidance_scale`` is the usual CFG minus one: cfg 1 (Z-Image Turbo, no guidance, negative prompt
unused) is ``guidance_scale=0``, Z-Image Base's cfg 4-5 is 3-4. ComfyUI, DiffSynth-Studio and A1111-style UIs
mean the usual CFG, as Generate's cfg does; ai-toolkit converts the same way. A cfg at or below 1 runs without
guidance, as it does on SD pipelines in diffusers.

The pipelines always pass their own sigmas (``linspace(1, 1/steps, steps)``) as a Python list; diffusers' UniPC
multiplies them by a float, which needs an array, so Generate passes the same sigmas as a numpy array then.
"""

from __future__ import annotations

import logging

from ...generation.calls import StepCallback, common, step_end

log = logging.getLogger(__name__)

ARRAY_SIGMAS = ("UniPC",)  # the scheduler names (schedulers.py) that need the pipeline's sigmas as an array
MULTIPLE = 16  # pixels per image token side: the FLUX.1 VAE's 8x down x patch 2 (every Z-Image release)


def guidance_scale(cfg: float) -> float:
    """diffusers' ``guidance_scale`` for Generate's (usual) cfg."""
    return max(float(cfg) - 1.0, 0.0)


def default_sigmas(steps: int):
    """The pipeline's own sigmas (``get_default_z_image_sigmas``), as a numpy array."""
    import numpy as np
    import torch

    return np.array(torch.linspace(1.0, 1 / steps, steps).tolist())


def call(p, on_step: StepCallback) -> dict:
    kwargs = {**common(p), "guidance_scale": guidance_scale(p.cfg), "negative_prompt": p.negative_prompt or None,
              **step_end(on_step, int(p.steps))}
    # Z-Image's text-to-image pipeline raises on sides that are not multiples of 16 (Flux's rounds them down): round
    # down as Flux does (img2img and inpainting take the image's size instead, already on the grid)
    width, height = (max(MULTIPLE, side - side % MULTIPLE) for side in (kwargs["width"], kwargs["height"]))
    if (width, height) != (kwargs["width"], kwargs["height"]):
        log.warning("Z-Image makes images in multiples of %d pixels: %dx%d becomes %dx%d", MULTIPLE,
                    kwargs["width"], kwargs["height"], width, height)
        kwargs.update(width=width, height=height)
    if p.scheduler in ARRAY_SIGMAS:
        kwargs["sigmas"] = default_sigmas(int(p.steps))
    return kwargs
