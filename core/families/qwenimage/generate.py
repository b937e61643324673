"""How Generate calls a Qwen-Image pipeline.

``cfg`` is Qwen-Image's real classifier-free guidance, ``true_cfg_scale`` (``guidance_scale`` is for
guidance-distilled models, which Qwen-Image is not: left unset). diffusers runs it only when a negative prompt is
given, so an empty one is sent as " " (a space), as Qwen's own examples do; cfg 1 or less runs without it (one
transformer pass per step, as Lightning LoRAs want). One step with Qwen-Image's scheduler (its terminal stretch,
``shift_terminal``) divides 0 by 0 and gives a NaN image, so it is refused by name.
"""

from __future__ import annotations

from ...errors import SpecError
from ...generation.calls import StepCallback, common, step_end
from .schedulers import LIGHTNING_NAME

EMPTY_NEGATIVE = " "


def call(p, on_step: StepCallback) -> dict:
    if int(p.steps) < 2 and p.scheduler != LIGHTNING_NAME:
        raise SpecError(f"1 step with the {p.scheduler!r} scheduler gives a NaN image on Qwen-Image (its scheduler "
                        "stretches the last sigma to shift_terminal, which needs 2 steps or more); use 2 or more "
                        f"steps, or the {LIGHTNING_NAME!r} scheduler")
    kwargs = {**common(p), **step_end(on_step, int(p.steps))}
    cfg = float(kwargs.pop("guidance_scale"))
    kwargs["true_cfg_scale"] = cfg
    kwargs["negative_prompt"] = (p.negative_prompt or EMPTY_NEGATIVE) if cfg > 1 else None
    return kwargs
