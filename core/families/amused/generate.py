"""How Generate calls an aMUSEd pipeline: its legacy per-step ``callback`` (no ``callback_on_step_end``)."""

from __future__ import annotations

from ...generation.calls import StepCallback, common


def call(p, on_step: StepCallback) -> dict:
    total = int(p.steps)
    return {**common(p), "negative_prompt": p.negative_prompt or None,
            "callback": lambda step, timestep, latents: on_step(step + 1, total), "callback_steps": 1}
