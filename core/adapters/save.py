"""Saving the applied stack as one LoRA file in diffusers' key format.

Two modes, both read from the model's own layers after reconciling:
- ``separate``: every adapter's factors side by side (ranks concatenated), each pre-scaled by its
  strength and alpha/rank: exact, and reloadable by diffusers and LoRA Deck at strength 1;
- ``merged``: the summed delta per module, truncated by SVD to ``rank``, with the relative
  approximation error reported.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass

import torch
from safetensors.torch import save

from ..errors import SpecError
from ..files.atomic import write_atomic
from ..stacks.specs import StackSpec
from .owner import PipelineOwner
from .peft_ops import exact_pattern

MODES = ("separate", "merged")
DIFF_PARTS = {"bias": "diff_b", "weight": "diff"}  # a whole parameter difference -> its part in the saved file


@dataclass(frozen=True)
class SaveReport:
    path: str
    mode: str
    modules: int
    max_rank: int
    relative_error: float  # merged mode: worst ||dW - BA|| / ||dW|| over modules; separate: 0

    def text(self) -> str:
        err = f", worst relative error {self.relative_error:.2e}" if self.mode == "merged" else " (exact)"
        return f"saved {self.modules} modules ({self.mode}, rank <= {self.max_rank}{err}) to {self.path}"


def _factors(layer, key: str, strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B * strength * alpha/r, A) of one adapter on one layer, in float32."""
    if getattr(layer, "use_dora", {}).get(key):
        raise SpecError("DoRA adapters cannot be saved as plain LoRA factors; unload them before saving")
    scale = layer.lora_alpha[key] / layer.r[key] * strength
    return layer.lora_B[key].weight.detach().float() * scale, layer.lora_A[key].weight.detach().float()


def _merge(parts, mode: str, rank: int):
    ups = torch.cat([b for b, _ in parts], dim=1)
    downs = torch.cat([a for _, a in parts], dim=0)
    if mode == "separate":
        return ups, downs, 0.0
    shape = downs.shape[1:]
    delta = ups.flatten(1) @ downs.flatten(1)
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    k = min(rank, s.numel(), ups.shape[1])  # never more than the stack's own total rank
    up, down = (u[:, :k] * s[:k]), vh[:k]
    error = float((delta - up @ down).norm() / delta.norm().clamp_min(1e-12))
    return up.reshape(up.shape[0], k, *([1] * (len(shape) - 1))), down.reshape(k, *shape), error


def collect(owner: PipelineOwner, stack: StackSpec, mode: str, rank: int, source: tuple[str, str] = ("", "")):
    """component -> module -> (up, down, error), read from the layers after applying ``stack``."""
    if mode not in MODES:
        raise SpecError(f"mode must be one of {MODES}, got {mode!r}")
    owner.apply(stack, *source)
    out: dict[str, dict[str, tuple]] = {}
    for component in owner.models():
        for path, (module, param, delta) in owner.param_differences(stack, component).items():
            if param not in DIFF_PARTS:
                raise SpecError(f"the stack changes the parameter {component}.{path} as a whole, which a LoRA file "
                                "has no key for; Save LoRA Stack writes weights and biases only")
            out.setdefault(component, {})[f"{module}.{DIFF_PARTS[param]}"] = (None, delta, 0.0)
        active, fused = owner.plan(stack, component)
        weights = {**active, **fused}
        for name, layer in owner.layers(component):
            parts = [_factors(layer, k, fn(name)) for k, fn in weights.items() if k in layer.scaling]
            if parts:
                out.setdefault(component, {})[name] = _merge(parts, mode, rank)
    if not out:
        raise SpecError("the stack has no enabled adapter; there is nothing to save")
    return out


def _metadata(factors, stack: StackSpec, mode: str) -> dict[str, str]:
    config = {}
    for component, modules in factors.items():
        ranks = {n: int(down.shape[0]) for n, (up, down, _) in modules.items() if up is not None}
        if not ranks:
            continue
        common = Counter(ranks.values()).most_common(1)[0][0]
        odd = {exact_pattern(n): r for n, r in ranks.items() if r != common}
        config.update({f"{component}.r": common, f"{component}.lora_alpha": common,
                       f"{component}.rank_pattern": odd, f"{component}.alpha_pattern": odd,
                       f"{component}.target_modules": sorted(ranks), f"{component}.init_lora_weights": False})
    sources = [{"name": a.name, "file": os.path.basename(a.path), "sha256": a.sha256, "weights": dict(a.weights),
                "blocks": [list(b) for b in a.blocks], "enabled": a.enabled} for a in stack.adapters]
    return {"lora_adapter_metadata": json.dumps(config), "format": "pt", "loradeck.mode": mode,
            "loradeck.sources": json.dumps(sources)}


def save_stack(owner: PipelineOwner, stack: StackSpec, path: str, mode: str = "separate",
               rank: int = 32, source: tuple[str, str] = ("", "")) -> SaveReport:
    """Write ``stack`` as applied on ``owner`` to ``path`` (.safetensors), atomically. ``source`` = (node id,
    title) of the caller, for the panel."""
    if not path.endswith(".safetensors"):
        raise SpecError(f"save path must end with .safetensors, got {path!r}")
    if mode == "merged" and not 1 <= rank <= 4096:
        raise SpecError(f"rank must be between 1 and 4096, got {rank!r}")
    with owner.lock:
        factors = collect(owner, stack, mode, rank, source)
    tensors = {}
    for component, modules in factors.items():
        for name, (up, down, _) in modules.items():
            if up is None:  # a whole parameter difference, under its part name (``<module>.diff_b``)
                tensors[f"{component}.{name}"] = down.contiguous()
                continue
            tensors[f"{component}.{name}.lora_A.weight"] = down.contiguous()
            tensors[f"{component}.{name}.lora_B.weight"] = up.contiguous()
    # safetensors' save_file would create the file owner-only (0600); serialise, then write it ourselves.
    write_atomic(path, save(tensors, metadata=_metadata(factors, stack, mode)))
    errors = [e for modules in factors.values() for (_, _, e) in modules.values()]
    ranks = [int(d.shape[0]) for modules in factors.values() for (u, d, _) in modules.values() if u is not None] or [0]
    return SaveReport(path, mode, len(errors), max(ranks), max(errors))


__all__ = ["MODES", "SaveReport", "save_stack"]
