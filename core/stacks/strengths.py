"""One strength value, checked: what every weight, schedule point and prompt tag goes through."""

from __future__ import annotations

import math

from ..errors import SpecError

MAX_STRENGTH = 100.0  # ComfyUI's LoraLoader range; beyond it a value is a typo, not a choice


def check_strength(value: float, what: str) -> float:
    """A finite float within +-MAX_STRENGTH, or SpecError naming the input."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(value) or abs(value) > MAX_STRENGTH:
        raise SpecError(f"{what}: expected a finite number within +-{MAX_STRENGTH:g}, got {value!r}")
    return value
