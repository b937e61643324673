"""Checks on what a pipeline produced: an image that came out NaN or infinite is an error, never a picture.

Every LoRA is checked at load (finite values, a magnitude bound), but a stack of them at high strengths, a fused
result made without safe fusing, or a model on the edge of its dtype can still overflow while denoising. The
result would be a black or garbage image with no word of why; instead the run fails, naming the adapters.
"""

from __future__ import annotations

import numpy as np

from ..errors import NonFiniteOutputError
from ..stacks.specs import StackSpec


def _adapters(stack: StackSpec) -> str:
    described = []
    for adapter in stack.adapters:
        state = "off" if not adapter.enabled else ("fused" if adapter.fused else "on")
        weights = ", ".join(f"{k}={v:g}" for k, v in adapter.weights)
        described.append(f"{adapter.name!r} ({state}; {weights})")
    return "; ".join(described) or "none (the base model alone)"


def check_images(images, stack: StackSpec) -> None:
    """NonFiniteOutputError unless every value of ``images`` (a numpy array or tensor) is finite."""
    values = np.asarray(images)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        bad = float(np.mean(~np.isfinite(values)))
        raise NonFiniteOutputError(
            f"the generated image came out NaN or infinite ({bad:.0%} of its values) with the LoRA stack: "
            f"{_adapters(stack)}. Lower the strengths, disable adapters one by one to find the culprit, or "
            "switch safe_fusing on when fusing; the pipeline itself is unchanged.")
