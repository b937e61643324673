"""How Generate calls a FLUX.2 pipeline. Its first positional argument is ``image`` (reference images), so every
argument is passed by name. FLUX.2 has no negative-prompt string: klein's guidance is classifier-free guidance
against the empty prompt (wired into diffusers' pipeline), dev's is embedded guidance, so the negative prompt is
not used."""

from __future__ import annotations

from ...generation.calls import StepCallback, common, step_end


def call(p, on_step: StepCallback) -> dict:
    return {**common(p), **step_end(on_step, int(p.steps))}
