"""How Generate calls a Flux pipeline: cfg is Flux's embedded guidance; there is no classic negative prompt."""

from __future__ import annotations

from ...generation.calls import StepCallback, common, step_end


def call(p, on_step: StepCallback) -> dict:
    return {**common(p), **step_end(on_step, int(p.steps))}
