"""The magnitude bound: a LoRA whose change would dwarf the weight it patches is refused at load.

Finite but absurd values (an alpha of 3e38, factors scaled by 1e5) pass every finiteness check and still make
every image NaN. So each fitted module's change ``||dW||_F = |scale| * ||up @ down||_F`` is compared with the
norm of the weight it patches: more than ``MAX_RATIO`` times it (the weight's norm counted as at least 1), or
large enough that its values could overflow the layer's dtype, is refused with the module named.

Cheap for the files people use: ``|scale| * ||up|| * ||down||`` bounds the change from above in one pass over
the factors (first through ``sqrt(numel) * max|x|``, which needs no conversion, then through the norms), and at or
below ``SURELY_FINE`` no weight and no float dtype can be troubled, so neither the exact norm nor the weight is
looked at. Only above it is the exact norm computed (from the rank x rank Gram matrices
or in row chunks, never as one big product) and the weight's norm read, once per module (``WeightStats``, which
the owner keeps for its pipeline).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import LoraFileError
from ..formats.patch import ParamDelta

MAX_RATIO = 1e4
SURELY_FINE = 1e4  # <= MAX_RATIO * 1 (the floor of a weight's norm) and < half of float16's largest value
CHUNK_ELEMENTS = 1 << 22
_ADVICE = "The file is damaged, or its alpha or weights are absurd (a diverged or broken training run); do not use it."


def norm(tensor: torch.Tensor) -> float:
    """||tensor||_F as a Python float (float32 accumulation, float64 for float64 tensors; inf on overflow)."""
    dtype = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    return float(torch.linalg.vector_norm(tensor.detach(), dtype=dtype))


def quick_bound(tensor: torch.Tensor) -> float:
    """An upper bound of ||tensor||_F: sqrt(numel) * max|x| from one ``aminmax`` (no per-element conversion,
    several times faster than the norm on half-precision factors); inf or NaN when a value is."""
    if tensor.numel() == 0:
        return 0.0
    low, high = torch.aminmax(tensor.detach())
    return math.sqrt(tensor.numel()) * max(-float(low), float(high))


class WeightStats:
    """(norm, dtype) of a module's weight as loaded, read once per module and kept."""

    def __init__(self, models: dict[str, torch.nn.Module], weight_of: Callable[[torch.nn.Module, str], torch.Tensor]):
        self.models, self.weight_of = models, weight_of
        self._known: dict[tuple[str, str], tuple[float, torch.dtype]] = {}

    def __call__(self, component: str, name: str) -> tuple[float, torch.dtype]:
        found = self._known.get((component, name))
        if found is None:
            weight = self.weight_of(self.models[component], name)
            found = self._known[(component, name)] = (norm(weight), weight.dtype)
        return found


def _is_identity(matrix: torch.Tensor) -> bool:
    return (matrix.dim() == 2 and matrix.shape[0] == matrix.shape[1] and bool((matrix.diagonal() == 1).all())
            and int(torch.count_nonzero(matrix)) == matrix.shape[0])


def product_norm(up: torch.Tensor, down: torch.Tensor) -> float:
    """||up @ down||_F exactly (float64), without forming the product when the rank is small."""
    up, down = up.flatten(1), down.flatten(1)
    if _is_identity(up):
        return math.sqrt(float(down.double().square().sum()))
    if _is_identity(down):
        return math.sqrt(float(up.double().square().sum()))
    rank, out, cols = down.shape[0], up.shape[0], down.shape[1]
    u, d = up.double(), down.double()
    if rank * (out + cols) <= out * cols:  # sum((U^T U) o (D D^T)) = trace(D^T U^T U D)
        return math.sqrt(max(float(((u.T @ u) * (d @ d.T)).sum()), 0.0))
    step = max(1, CHUNK_ELEMENTS // max(cols, 1))
    return math.sqrt(sum(float((u[i : i + step] @ d).square().sum()) for i in range(0, out, step)))


def storage_bounds(fitted: dict[str, dict]) -> dict[tuple, float]:
    """max |x| over each storage that holds the factors of several patches (a file's run of one dtype: the factors
    are views of it, ``files.reading``), from one ``aminmax`` per storage instead of one per factor: with two torch
    threads each small parallel op waits for both, which on a busy CPU made these checks a large part of a load.
    An upper bound of every factor's max |x| (other values of the file count too: a kohya alpha can make it loose,
    and then the factor's own bound is taken)."""
    storages: dict[tuple, list] = {}  # (data_ptr, dtype) -> [storage, factors on it]
    for patches in fitted.values():
        for patch in patches.values():
            for factor in () if isinstance(patch, ParamDelta) else (patch.up, patch.down):
                if isinstance(factor, torch.Tensor) and factor.dtype.is_floating_point:
                    storages.setdefault(_storage(factor), [factor.untyped_storage(), 0])[1] += 1
    bounds = {}
    for (ptr, dtype), (storage, count) in storages.items():
        if count >= 4:
            whole = torch.empty(0, dtype=dtype).set_(storage, 0, (storage.nbytes() // dtype.itemsize,), (1,))
            low, high = torch.aminmax(whole)
            bounds[(ptr, dtype)] = max(-float(low), float(high))
    return bounds


def _storage(tensor: torch.Tensor) -> tuple:
    return tensor.untyped_storage().data_ptr(), tensor.dtype


def check_magnitudes(path: str, fitted: dict[str, dict], weights: WeightStats) -> None:
    """LoraFileError naming the first module whose change is zero-scaled, non-finite, or dwarfs its weight."""
    bounds = storage_bounds(fitted)
    for component, patches in fitted.items():
        for name, patch in patches.items():
            _check(path, component, name, patch, weights, bounds)


def _shared_bound(tensor, bounds: dict) -> float | None:
    found = bounds.get(_storage(tensor)) if isinstance(tensor, torch.Tensor) else None
    return None if found is None else math.sqrt(tensor.numel()) * found


def _change(path: str, component: str, name: str, patch, bounds: dict | None = None) -> float | None:
    """||dW||_F of a patch, or None when it surely is fine (see the module docstring; ``bounds``: from
    ``storage_bounds``)."""
    if isinstance(patch, ParamDelta):  # a whole difference: its own norm
        change = norm(patch.delta)
        return None if change <= SURELY_FINE else change
    scale = abs(patch.scale)
    if not math.isfinite(scale) or scale == 0:
        raise LoraFileError(path, f"gives {component} module {name} a scale of {patch.scale!r}", _ADVICE)
    up, down = _shared_bound(patch.up, bounds or {}), _shared_bound(patch.down, bounds or {})
    if up is not None and down is not None and scale * up * down <= SURELY_FINE:
        return None
    if scale * quick_bound(patch.up) * quick_bound(patch.down) <= SURELY_FINE:
        return None
    if scale * norm(patch.up) * norm(patch.down) <= SURELY_FINE:
        return None
    return scale * product_norm(patch.up, patch.down)


def _check(path: str, component: str, name: str, patch, weights: WeightStats, bounds: dict | None = None) -> None:
    change = _change(path, component, name, patch, bounds)
    if change is None:
        return
    weight, dtype = weights(component, name)
    if not change <= MAX_RATIO * max(weight, 1.0):
        raise LoraFileError(path, f"would change {component} module {name} by {change:.3g} (Frobenius norm), "
                            f"{change / max(weight, 1e-30):.3g} times the norm of its weight ({weight:.3g})", _ADVICE)
    largest = torch.finfo(dtype).max / 2 if dtype.is_floating_point else math.inf
    if not change <= largest:
        raise LoraFileError(path, f"would change {component} module {name} by values up to {change:.3g}, beyond "
                            f"what its {str(dtype).removeprefix('torch.')} weights hold", _ADVICE)
