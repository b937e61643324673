"""How Generate calls a Sana pipeline: the usual call, at the size asked, with a negative prompt always.

* SanaPipeline's ``use_resolution_binning`` (on by default) renders at the nearest of its trained sizes (1024 px
  and up) and resizes the picture to the size asked; Generate renders at the size asked, as ComfyUI does.
* Its negative prompt must be text (its default is ""; None fails).
"""

from __future__ import annotations

from ...generation.calls import StepCallback, diffusers_call


def call(p, on_step: StepCallback) -> dict:
    return {**diffusers_call(p, on_step), "negative_prompt": p.negative_prompt, "use_resolution_binning": False}
