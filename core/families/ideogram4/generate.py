"""How Generate calls an Ideogram 4 pipeline.

* cfg is its ``guidance_scale`` (v = cfg * v_text + (1 - cfg) * v_unconditional, every step); the pipeline's own
  default is a per-step ``guidance_schedule``, which a constant scale must replace.
* No negative prompt: the unconditional transformer sees no text.
* ``max_sequence_length``: the text is left-padded to it and the padding is masked out, so the picture does not
  depend on it (diffusers' default 2048 costs the text encoder and both transformers 2048 tokens whatever the
  prompt); the call passes the smallest multiple of 256 that holds the prompt (a token is at least one UTF-8
  byte), at most 2048, where diffusers refuses a longer prompt itself.
"""

from __future__ import annotations

from ...generation.calls import StepCallback, common, step_end

TEMPLATE_BYTES = 64  # the chat template around the prompt, with room to spare
MAX_TOKENS = 2048


def sequence_length(prompt: str) -> int:
    needed = len(prompt.encode("utf-8")) + TEMPLATE_BYTES
    return min(MAX_TOKENS, -(-needed // 256) * 256)


def call(p, on_step: StepCallback) -> dict:
    return {**common(p), "guidance_schedule": None, "max_sequence_length": sequence_length(p.prompt),
            **step_end(on_step, int(p.steps))}
