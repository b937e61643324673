"""Fuse with the originals kept; unfuse restores them by copy, so it is exact.

A fused layer carries two attributes, read back as the truth about fusion:
``_loradeck_original`` (the base weight before fusing) and ``_loradeck_fused``
(adapter key -> strength baked in). The adapters stay loaded and are simply not active there.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import FuseError

WeightFn = Callable[[str], float]  # module name -> strength

ORIGINAL = "_loradeck_original"
FUSED = "_loradeck_fused"


def live_fused(layer) -> dict[str, float]:
    return dict(getattr(layer, FUSED, {}))


def wanted_fused(name: str, layer, fused: dict[str, WeightFn]) -> dict[str, float]:
    return {k: fn(name) for k, fn in fused.items() if k in layer.scaling}


def needs_refuse(layers, fused: dict[str, WeightFn]) -> bool:
    return any(live_fused(layer) != wanted_fused(name, layer, fused) for name, layer in layers)


def restore(layers) -> int:
    """Copy every fused layer's original weight back. Returns how many layers were restored."""
    count = 0
    for _, layer in layers:
        original = getattr(layer, ORIGINAL, None)
        if original is None:
            continue
        with torch.no_grad():
            layer.get_base_layer().weight.copy_(original)
        delattr(layer, ORIGINAL)
        delattr(layer, FUSED)
        count += 1
    return count


def _merged(layer, strengths: dict[str, float], original: torch.Tensor) -> torch.Tensor:
    total = original.float()
    for key, strength in strengths.items():
        layer.set_scale(key, strength)
        total = total + layer.get_delta_weight(key).float()
    return total.to(original.dtype)


def fuse(layers, fused: dict[str, WeightFn], safe: bool, describe: dict[str, str]) -> int:
    """Bake each adapter in ``fused`` into the base weights at its strength, all or nothing.

    With ``safe`` a non-finite result raises FuseError naming adapter and layer, after every
    layer touched so far is restored. Returns the number of layers fused.
    """
    done = []
    try:
        for name, layer in layers:
            strengths = wanted_fused(name, layer, fused)
            if not strengths:
                continue
            weight = layer.get_base_layer().weight
            original = weight.detach().clone()
            merged = _merged(layer, strengths, original)
            if safe and not torch.isfinite(merged).all():
                who = ", ".join(describe.get(k, k) for k in strengths)
                raise FuseError(f"fusing {who} gives non-finite weights in layer {name}; nothing was fused. "
                                "Lower lora_scale or the strengths, or use another file.")
            setattr(layer, ORIGINAL, original)
            setattr(layer, FUSED, strengths)
            done.append((name, layer))
            with torch.no_grad():
                weight.copy_(merged)
    except BaseException:
        restore(done)
        raise
    return len(done)
