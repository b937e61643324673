"""Exact rewrites of LyCORIS weight products as one low-rank pair ``up @ down``.

Every algorithm becomes a plain LoRA pair, so peft's layers, scale writes and the exact
fusion apply unchanged. Each identity below is exact in real arithmetic; in floating point
the pair differs from the reference product only by rounding (well under 1e-6 relative).

Shapes: ``up`` [out, R]; ``down`` [R, n] where n = in (linear) or in*kh*kw (a conv kernel
flattened in PyTorch's [out, in, kh, kw] order; ``resolve`` reshapes it to the layer).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Pair = tuple[torch.Tensor, torch.Tensor]  # (up, down)


class FormatError(ValueError):
    """A module's tensors do not fit together (shapes, ranks); the message names the module and what."""


def f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous()


def flat(t: torch.Tensor) -> torch.Tensor:
    """[r, in, kh, kw] -> [r, in*kh*kw]; 2-D stays as it is."""
    return t.reshape(t.shape[0], -1)


def tucker_down(core: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """Fold a Tucker core into the down factor: [r, r', kh, kw] x [r', in] -> [r, in, kh, kw].

    ``out[i, c, k, l] = sum_j core[i, j, k, l] * down[j, c]``: the core's first index pairs
    with ``up``, its second with ``down`` (LoCon ``lora_mid``, LoHa ``hada_t*``, LoKr ``lokr_t2``).
    """
    return torch.einsum("ij...,jc->ic...", f32(core), flat(f32(down)))


def hadamard_pair(first: Pair, second: Pair) -> Pair:
    """``(u1 @ d1) * (u2 @ d2) == up @ down`` with rank r1*r2.

    Column (i, j) of ``up`` is ``u1[:, i] * u2[:, j]``; row (i, j) of ``down`` is ``d1[i] * d2[j]``.
    """
    (u1, d1), (u2, d2) = first, second
    up = (f32(u1)[:, :, None] * f32(u2)[:, None, :]).flatten(1)
    down = (flat(f32(d1))[:, None, :] * flat(f32(d2))[None, :, :]).flatten(0, 1)
    return up, down


def kron_pair(first: Pair, second: Pair) -> Pair:
    """``kron(u1 @ d1, u2 @ d2) == kron(u1, u2) @ kron(d1, d2)`` (the mixed-product rule).

    With a conv ``d2`` flattened to [r2, in2*kh*kw], kron's column order equals the layer's
    [out, in1*in2, kh, kw] order, as the reference's 4-D kron with a [.., .., 1, 1] ``w1`` does.
    """
    (u1, d1), (u2, d2) = first, second
    return torch.kron(f32(u1), f32(u2)), torch.kron(flat(f32(d1)), flat(f32(d2)))


def identity_split(matrix: torch.Tensor) -> Pair:
    """A dense [a, b] matrix as (I_a, M) or (M, I_b), in its own dtype: the rank is the smaller side."""
    a, b = matrix.shape
    m = matrix.detach().contiguous()
    eye = torch.eye(min(a, b), dtype=m.dtype, device=m.device)
    return (eye, m) if a <= b else (m, eye)


def pair_cost(up: torch.Tensor, down: torch.Tensor) -> int:
    return up.numel() + down.numel()


def dense_cost(out: int, n: int) -> int:
    return out * n + min(out, n) ** 2


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


@dataclass(frozen=True)
class Product:
    """A weight delta [rows, cols] (cols = in*kh*kw) known by its shapes, before anything is multiplied.

    ``pair`` builds it as ``up @ down`` of rank ``rank``, ``dense`` as the matrix itself; ``cheapest`` picks
    the form with fewer numbers from the shapes alone, so building never holds more than about the smaller."""

    rows: int
    cols: int
    kernel: tuple[int, ...]  # (kh, kw) when the factors carry a kernel, () when they do not say
    rank: int
    pair: Callable[[], Pair]
    dense: Callable[[], torch.Tensor]

    def cheapest(self) -> Pair:
        if (self.rows + self.cols) * self.rank <= dense_cost(self.rows, self.cols):
            return self.pair()
        return identity_split(self.dense())


def full_factor(matrix: torch.Tensor, what: str) -> Product:
    """A factor stored whole: [rows, cols] or [rows, in, kh, kw]."""
    if matrix.dim() not in (2, 4):
        raise FormatError(f"{what} {_shape(matrix)} is not 2-D or 4-D")
    rows, cols = matrix.shape[0], math.prod(matrix.shape[1:])
    return Product(rows, cols, tuple(matrix.shape[2:]), min(rows, cols),
                   lambda: identity_split(flat(matrix)), lambda: flat(f32(matrix)))


def low_rank_factor(up: torch.Tensor, down: torch.Tensor, what: str) -> Product:
    """``up`` [rows, r] @ ``down`` [r, cols] (or [r, in, kh, kw])."""
    if up.dim() != 2 or down.dim() not in (2, 4) or up.shape[1] != down.shape[0]:
        raise FormatError(f"{what}: up {_shape(up)} and down {_shape(down)} do not multiply (ranks differ)")
    return Product(up.shape[0], math.prod(down.shape[1:]), tuple(down.shape[2:]), up.shape[1],
                   lambda: (f32(up), flat(f32(down))), lambda: f32(up) @ flat(f32(down)))


def tucker_factor(up: torch.Tensor, core: torch.Tensor, down: torch.Tensor, what: str) -> Product:
    """``up`` [rows, r], a Tucker ``core`` [r, r', kh, kw] and ``down`` [r', in] (or [r', in, 1, 1])."""
    plain_down = down.dim() == 2 or (down.dim() == 4 and tuple(down.shape[2:]) == (1, 1))
    if up.dim() != 2 or core.dim() != 4 or not plain_down or up.shape[1] != core.shape[0] or \
            core.shape[1] != down.shape[0]:
        raise FormatError(f"{what}: up {_shape(up)}, core {_shape(core)} and down {_shape(down)} do not multiply")
    kernel = tuple(core.shape[2:])

    def dense() -> torch.Tensor:  # (up . core) . down: never the [r, in, kh, kw] middle when r is large
        upcore = torch.einsum("oi,ijkl->ojkl", f32(up), f32(core))
        return flat(torch.einsum("ojkl,jc->ockl", upcore, flat(f32(down))))

    return Product(up.shape[0], math.prod(down.shape[1:]) * math.prod(kernel), kernel, up.shape[1],
                   lambda: (f32(up), flat(tucker_down(core, down))), dense)


def hadamard(first: Product, second: Product, what: str) -> Product:
    """The elementwise product of two factors of one shape (LoHa)."""
    kernels = {k for k in (first.kernel, second.kernel) if k}
    if (first.rows, first.cols) != (second.rows, second.cols) or len(kernels) > 1:
        raise FormatError(f"{what}: its two factors have different shapes ([{first.rows}, {first.cols}] "
                          f"vs [{second.rows}, {second.cols}])")
    return Product(first.rows, first.cols, first.kernel or second.kernel, first.rank * second.rank,
                   lambda: hadamard_pair(first.pair(), second.pair()), lambda: first.dense() * second.dense())


def kronecker(first: Product, second: Product, what: str) -> Product:
    """``kron(first, second)`` (LoKr); only the second factor may carry a conv kernel."""
    if first.kernel:
        raise FormatError(f"{what}: its first factor has a kernel {list(first.kernel)}; only the second may")
    return Product(first.rows * second.rows, first.cols * second.cols, second.kernel, first.rank * second.rank,
                   lambda: kron_pair(first.pair(), second.pair()), lambda: torch.kron(first.dense(), second.dense()))


def cheapest(pair: Pair) -> Pair:
    """``pair`` or the same product as a dense pair, whichever holds fewer numbers."""
    up, down = pair
    out, n = up.shape[0], flat(down).shape[1]
    if pair_cost(up, down) <= dense_cost(out, n):
        return up, down
    return identity_split(f32(up) @ flat(f32(down)))
