"""Fuse with the originals kept; unfuse puts them back, so it is exact.

A fused layer carries two attributes, read back as the truth about fusion:
``_loradeck_original`` (the base weight before fusing) and ``_loradeck_fused``
(adapter key -> strength baked in). The adapters stay loaded and are simply not active there.

A plain dense weight is never written: the fused values go to a new tensor that becomes the parameter's
data, and unfusing hands the untouched original back (no copy either way). Any other weight (a tensor
subclass, a quantised or non-parameter weight) is fused in place after a copy of it is kept, and unfusing
copies that back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import FuseError
from ..files.checks import finite  # one finiteness test for files and fused weights

WeightFn = Callable[[str], float]  # module name -> strength

ORIGINAL = "_loradeck_original"
FUSED = "_loradeck_fused"


def live_fused(layer) -> dict[str, float]:
    # plain attributes live in the instance dict; reading it directly skips nn.Module's slow miss path
    return dict(layer.__dict__.get(FUSED, {}))


def wanted_fused(name: str, layer, fused: dict[str, WeightFn]) -> dict[str, float]:
    return {k: fn(name) for k, fn in fused.items() if k in layer.scaling}


def needs_refuse(layers, fused: dict[str, WeightFn]) -> bool:
    for name, layer in layers:
        live = layer.__dict__.get(FUSED)
        if live is None:
            if any(k in layer.scaling for k in fused):
                return True
        elif live != wanted_fused(name, layer, fused):
            return True
    return False


def restore(layers, in_place: bool = False) -> int:
    """Give every fused layer its original weight back (``in_place``: by copy, keeping each weight's storage,
    e.g. for a compiled graph that recorded their addresses). Returns how many layers were restored."""
    count = 0
    for _, layer in layers:
        original = layer.__dict__.get(ORIGINAL)
        if original is None:
            continue
        weight = layer.get_base_layer().weight
        if not in_place and _swappable(weight) and _same_kind(original, weight):
            weight.data = original
        else:  # fused in place, or moved since (``pipe.to``): copy the values back where the weight is now
            with torch.no_grad():
                weight.copy_(original)
        delattr(layer, ORIGINAL)
        delattr(layer, FUSED)
        count += 1
    return count


def _swappable(weight) -> bool:
    """A plain dense parameter, whose data can be replaced by another tensor of the same kind."""
    return (type(weight) is torch.nn.Parameter and type(weight.data) is torch.Tensor
            and weight.layout == torch.strided)


def _same_kind(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a.shape, a.stride(), a.dtype, a.device) == (b.shape, b.stride(), b.dtype, b.device)


def _plain(layer, key: str) -> bool:
    """A plain low-rank pair whose delta is ``B @ A`` flattened (linear, or a conv with one group)."""
    if key in getattr(layer, "lora_variant", {}) or getattr(layer, "fan_in_fan_out", False):
        return False
    base = layer.get_base_layer()
    return isinstance(base, torch.nn.Linear) or getattr(base, "groups", 0) == 1


class _Scratch:
    """Reused work buffers for one fuse: allocating (and first touching) a fresh layer-sized tensor per layer
    costs as much as the arithmetic on a busy CPU."""

    def __init__(self):
        self._buffers: dict[tuple, torch.Tensor] = {}

    def like(self, matrix: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        key = (dtype, matrix.device)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < matrix.numel():
            buffer = self._buffers[key] = torch.empty(matrix.numel(), dtype=dtype, device=matrix.device)
        return buffer[: matrix.numel()].view(matrix.shape)


def _pairs(layer, keys: list[str], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``[s1*B1, s2*B2, ...]`` and ``[A1; A2; ...]`` flattened to matrices, in ``dtype``."""
    ups = torch.cat([layer.lora_B[k].weight.flatten(1).to(dtype) * layer.scaling[k] for k in keys], dim=1)
    downs = torch.cat([layer.lora_A[k].weight.flatten(1).to(dtype) for k in keys], dim=0)
    return ups, downs


def _add_delta(layer, strengths: dict[str, float], source: torch.Tensor, out: torch.Tensor,
               scratch: _Scratch) -> None:
    """``out = source + the adapters' deltas`` (key -> strength); ``out`` may be ``source`` (in place).

    Plain pairs are stacked into one matmul, ``[s1*B1, s2*B2] @ [A1; A2]``: one pass over the layer however
    many adapters are fused. float32/float64 weights (and any on an accelerator) take it as one ``addmm`` in
    their own dtype. Half-precision weights on the CPU, whose matmuls are slow there, get the delta computed
    in float32 into a reused buffer, rounded to their dtype, and added (what peft's merge does per adapter)."""
    for key, strength in strengths.items():
        layer.set_scale(key, strength)
    plain = [k for k in strengths if _plain(layer, k)] if source.is_contiguous() and out.is_contiguous() else []
    if plain:
        matrix, target = source.view(source.shape[0], -1), out.view(out.shape[0], -1)
        if source.dtype in (torch.float32, torch.float64) or source.device.type != "cpu":
            torch.addmm(matrix, *_pairs(layer, plain, source.dtype), out=target)
        else:
            wide = scratch.like(matrix, torch.float32)
            torch.mm(*_pairs(layer, plain, torch.float32), out=wide)
            narrow = scratch.like(matrix, source.dtype)
            narrow.copy_(wide)
            torch.add(matrix, narrow, out=target)
    elif out is not source:
        out.copy_(source)
    for key in strengths:
        if key not in plain:
            out.add_(layer.get_delta_weight(key).to(out.dtype))


def refuse_quantized(layers, fused: dict[str, WeightFn], describe: dict[str, str]) -> None:
    """Fusing into a weight kept quantized (fp8, GGUF) would have to round the sum back to 8 or 4 bits: the LoRA's
    small changes are mostly lost and unfusing could not give the file's weight back. Refused, before anything
    changes; such a LoRA runs unfused, where a strength change stays a scale write."""
    for name, layer in layers:
        base = layer.get_base_layer()
        kind = getattr(base, "quantized", None)
        keys = [k for k in fused if k in layer.scaling]
        if kind and keys:
            who = ", ".join(describe.get(k, k) for k in keys)
            raise FuseError(f"cannot fuse {who}: layer {name} keeps its weight quantized ({kind}), and fusing "
                            "would round the LoRA's change back to that precision and lose most of it; nothing was "
                            "fused. Leave it unfused (strengths still change instantly), or load the model from an "
                            "fp16/bf16 file to fuse")


def fuse(layers, fused: dict[str, WeightFn], safe: bool, describe: dict[str, str], in_place: bool = False) -> int:
    """Bake each adapter in ``fused`` into the base weights at its strength, all or nothing (``in_place``:
    into each weight's own storage, after keeping a copy).

    With ``safe`` a non-finite result raises FuseError naming adapter and layer, after every
    layer touched so far is restored. A layer kept quantized is refused first (``refuse_quantized``).
    Returns the number of layers fused.
    """
    layers = list(layers)
    refuse_quantized(layers, fused, describe)
    done, scratch = [], _Scratch()
    try:
        for name, layer in layers:
            strengths = wanted_fused(name, layer, fused)
            if not strengths:
                continue
            weight = layer.get_base_layer().weight
            swap = not in_place and _swappable(weight)
            original = weight.data if swap else weight.detach().clone()  # the exact original, given back by restore
            setattr(layer, ORIGINAL, original)
            setattr(layer, FUSED, strengths)
            done.append((name, layer))
            with torch.no_grad():
                if swap:
                    result = torch.empty_like(original)  # same strides
                    _add_delta(layer, strengths, original, result, scratch)
                    weight.data = result
                else:
                    _add_delta(layer, strengths, weight, weight, scratch)
            if safe and not finite(weight):
                who = ", ".join(describe.get(k, k) for k in strengths)
                raise FuseError(f"fusing {who} gives non-finite weights in layer {name}; nothing was fused. "
                                "Lower lora_scale or the strengths, or use another file.")
    except BaseException:
        restore(done, in_place)
        raise
    return len(done)
