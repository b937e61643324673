"""How Generate calls a Krea 2 pipeline: ``cfg`` is the usual classifier-free guidance scale (ComfyUI's and
musubi-tuner's), while Krea2Pipeline's ``guidance_scale`` g computes ``cond + g * (cond - uncond)``, which is
cfg ``1 + g``: so g = cfg - 1, and cfg <= 1 runs without guidance (one forward per step, the negative prompt
unused), as Krea-2-Turbo is meant to run (cfg 1, 8 steps)."""

from __future__ import annotations

from ...generation.calls import StepCallback, common, step_end


def guidance(cfg: float) -> float:
    """Krea2Pipeline's guidance_scale for a classifier-free guidance scale ``cfg`` (ai-toolkit's conversion)."""
    return max(0.0, float(cfg) - 1.0)


def call(p, on_step: StepCallback) -> dict:
    return {**common(p), "guidance_scale": guidance(p.cfg), "negative_prompt": p.negative_prompt or None,
            **step_end(on_step, int(p.steps))}
