"""LyCORIS LoHa, LoKr and full-difference modules, rewritten exactly as one low-rank pair.

Scales follow the reference loader (ComfyUI ``comfy/weight_adapter``):
- LoHa: ``(w1a @ w1b) * (w2a @ w2b) * alpha / rank`` with rank = ``hada_w1_b``'s first dimension;
  Tucker modules build each factor as ``einsum(t, w_b, w_a)`` (``w_a`` is then [rank, out]).
- LoKr: ``kron(w1, w2) * alpha / dim`` where dim is the rank of ``w2`` if it is decomposed, else of
  ``w1`` if that is; with both full (or no alpha) the scale is 1.
- full: ``diff`` is the weight difference itself (scale 1).
The scale goes into ``ModulePatch.alpha`` (alpha = scale * pair rank), so a strength multiplies
it exactly as it does a plain LoRA's.

LoHa and LoKr modules become ``LazyPatch``es: their shape follows from the factors' shapes (which must agree,
else a FormatError names the module), and the pair or dense delta is built only after matching found the
layer it fits, so a Kronecker product of two large factors is refused before anything is allocated.
"""

from __future__ import annotations

import torch

from .lowrank import (
    Product,
    flat,
    full_factor,
    hadamard,
    identity_split,
    kronecker,
    low_rank_factor,
    tucker_factor,
)
from .patch import LazyPatch, ModulePatch, alpha_of


def _loha_factor(parts, n: int) -> Product | None:
    w_a, w_b, core = parts.get(f"hada_w{n}_a"), parts.get(f"hada_w{n}_b"), parts.get(f"hada_t{n}")
    if w_a is None or w_b is None:
        return None
    if core is not None:  # Tucker: w_a is [rank, out]
        return tucker_factor(w_a.T if w_a.dim() == 2 else w_a, core, w_b, f"hada_w{n}/hada_t{n}")
    return low_rank_factor(w_a, w_b, f"hada_w{n}")


def loha_patch(parts) -> LazyPatch | None:
    """LoHa (optionally Tucker): the Hadamard product, as one pair of rank r1*r2 or dense, built when fitted."""
    first, second = _loha_factor(parts, 1), _loha_factor(parts, 2)
    if first is None or second is None:
        return None
    alpha = alpha_of(parts)
    scale = 1.0 if alpha is None else alpha / parts["hada_w1_b"].shape[0]
    return LazyPatch(hadamard(first, second, "LoHa"), scale)


def _lokr_factor(parts, n: int) -> tuple[Product, int | None] | None:
    """(factor, rank if decomposed else None) for ``w1`` or ``w2``. Only ``w2`` has a Tucker core (as in the
    reference); a ``lokr_t1`` stays unused and is reported."""
    full = parts.get(f"lokr_w{n}")
    if full is not None:
        return full_factor(full, f"lokr_w{n}"), None
    w_a, w_b, core = parts.get(f"lokr_w{n}_a"), parts.get(f"lokr_w{n}_b"), parts.get(f"lokr_t{n}") if n == 2 else None
    if w_a is None or w_b is None:
        return None
    if core is not None:  # Tucker: w_a is [rank, out]
        return tucker_factor(w_a.T if w_a.dim() == 2 else w_a, core, w_b, f"lokr_w{n}/lokr_t{n}"), int(w_b.shape[0])
    return low_rank_factor(w_a, w_b, f"lokr_w{n}"), int(w_b.shape[0])


def lokr_patch(parts) -> LazyPatch | None:
    """LoKr: ``kron(w1, w2)``, as one pair via the mixed-product rule or dense, built when fitted."""
    first, second = _lokr_factor(parts, 1), _lokr_factor(parts, 2)
    if first is None or second is None:
        return None
    dim = second[1] if second[1] is not None else first[1]
    alpha = alpha_of(parts) if dim is not None else None  # both factors full: alpha is not used (can be inf)
    scale = 1.0 if alpha is None else alpha / dim
    return LazyPatch(kronecker(first[0], second[0], "LoKr"), scale)


def full_patch(parts) -> ModulePatch | None:
    """A stored weight difference (LyCORIS "full"/diff files), as an exact dense pair."""
    diff = parts.get("diff")
    if diff is None or diff.dim() < 2:
        return None
    up, down = identity_split(flat(diff))
    return ModulePatch(down=down, up=up, alpha=None)


def dense_patch(delta: torch.Tensor) -> ModulePatch:
    """Any weight delta (linear [out, in] or conv [out, in, kh, kw]) as an exact pair, scale 1."""
    up, down = identity_split(flat(delta))
    return ModulePatch(down=down, up=up, alpha=None)
