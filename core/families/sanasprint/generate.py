"""How Generate calls a Sana Sprint pipeline.

* cfg is its embedded guidance scale (a guidance-distilled model: one pass a step, no negative prompt).
* At the size asked: no resolution binning (see the Sana row).
* Its sCM schedule's ``intermediate_timesteps`` (1.3 by default) applies to two steps only; diffusers refuses it
  with any other count, so other counts pass None (the scheduler's own spacing).
"""

from __future__ import annotations

from ...generation.calls import StepCallback, common, step_end

TWO_STEP_INTERMEDIATE = 1.3  # SanaSprintPipeline's default


def call(p, on_step: StepCallback) -> dict:
    intermediate = TWO_STEP_INTERMEDIATE if int(p.steps) == 2 else None
    return {**common(p), "use_resolution_binning": False, "intermediate_timesteps": intermediate,
            **step_end(on_step, int(p.steps))}
