"""How Generate calls an ERNIE-Image pipeline: the usual call, without the prompt enhancer (``use_pe``), which
would rewrite the prompt with a language model before the picture is made."""

from __future__ import annotations

from ...generation.calls import StepCallback, diffusers_call


def call(p, on_step: StepCallback) -> dict:
    return {**diffusers_call(p, on_step), "use_pe": False}
