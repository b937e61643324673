"""Exact rewrites of LyCORIS weight products as one low-rank pair ``up @ down``.

Every algorithm becomes a plain LoRA pair, so peft's layers, scale writes and the exact
fusion apply unchanged. Each identity below is exact in real arithmetic; in floating point
the pair differs from the reference product only by rounding (well under 1e-6 relative).

Shapes: ``up`` [out, R]; ``down`` [R, n] where n = in (linear) or in*kh*kw (a conv kernel
flattened in PyTorch's [out, in, kh, kw] order; ``resolve`` reshapes it to the layer).
"""

from __future__ import annotations

import torch

Pair = tuple[torch.Tensor, torch.Tensor]  # (up, down)


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


def cheapest(pair: Pair) -> Pair:
    """``pair`` or the same product as a dense pair, whichever holds fewer numbers."""
    up, down = pair
    out, n = up.shape[0], flat(down).shape[1]
    if pair_cost(up, down) <= dense_cost(out, n):
        return up, down
    return identity_split(f32(up) @ flat(f32(down)))
