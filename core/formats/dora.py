"""DoRA as an exact weight delta, with ComfyUI's strength semantics.

DoRA's weight at full strength is ``D = m * V / ||V||`` with ``V = W + dW`` (the base plus the
low-rank delta) and the norm taken per output row (``m`` of shape [out] / [out, 1, ...], peft and
LyCORIS ``wd_on_out``) or per input column (``m`` of shape [1, in, ...], LyCORIS' default).

At strength ``s`` the reference (ComfyUI ``weight_decompose``) uses ``W + s * (D - W)``: linear
in ``s``, so ``D - W`` is applied as an ordinary delta and strengths, enable/disable, stacking,
fuse and exact unfuse work exactly as for a plain LoRA (strength 0 is the base, bit for bit).
peft's own DoRA layer instead renormalises ``W + s*dW`` for every ``s`` (at ``s = 0`` it is
``m * W / ||W||``, not the base); both agree at ``s = 1``.

One deliberate difference from the reference: for output-axis magnitudes ComfyUI divides by the
norm of the *base* ``W`` rather than of ``V``; DoRA (the paper, peft, and LyCORIS which trains
these files) normalises ``V``, as ComfyUI itself does for the input axis. We follow DoRA.
"""

from __future__ import annotations

import torch

from .lowrank import FormatError

EPS = torch.finfo(torch.float32).eps  # as the reference adds to the norm


def axis_of(magnitude: torch.Tensor, weight: torch.Tensor) -> int | None:
    """0 (per output row), 1 (per input column) or None when the magnitude fits neither."""
    out, cols = int(weight.shape[0]), int(weight.shape[1])
    if magnitude.shape[0] == out and magnitude.numel() == out:
        return 0
    if magnitude.numel() == cols and (magnitude.dim() == 1 or magnitude.shape[0] == 1):
        return 1
    return None


def dora_delta(weight: torch.Tensor, delta: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """``m * (W + dW) / ||W + dW|| - W`` in float32, normalised on the magnitude's axis."""
    axis = axis_of(magnitude, weight)
    if axis is None:
        raise ValueError(f"magnitude {tuple(magnitude.shape)} fits neither axis of weight {tuple(weight.shape)}")
    base = weight.detach().to(torch.float32)
    merged = base + delta.to(torch.float32)
    if not torch.isfinite(merged).all():
        raise FormatError("its DoRA direction W + dW overflows float32 (an absurd alpha or absurd factors)")
    dims = tuple(d for d in range(merged.dim()) if d != axis)
    norm = torch.linalg.vector_norm(merged, dim=dims, keepdim=True)
    if not torch.isfinite(norm).all():  # squares overflowed: the same norm, taken of values scaled down first
        largest = merged.abs().amax(dim=dims, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
        norm = torch.linalg.vector_norm(merged / largest, dim=dims, keepdim=True) * largest
    return magnitude.detach().to(torch.float32).reshape(norm.shape) / (norm + EPS) * merged - base
