"""Whole-tensor differences on parameters peft cannot wrap: biases, norm weights, modulation tables, 3-D convs.

Besides low-rank pairs, a LoRA file from lightx2v, ComfyUI's LoRA extraction or a LyCORIS "full" run may carry
the difference itself for a bias (``diff_b``), a norm's weight (a 1-D ``diff``), a modulation table (``diff_m``)
or the weight of a layer peft cannot wrap (a 3-D conv). Such a parameter holds ``original + the sum over the
stack's adapters of strength x difference``, written by the owner whenever the stack changes: the sum is formed
in float32 in the stack's order and rounded once to the parameter's dtype, as a trainer's merge does. The
original is kept from the first write and put back, bit for bit, when no adapter changes the parameter any more;
a strength change rewrites only the parameters whose terms changed. Active and fused adapters alike are summed
in (a parameter difference has no unfused form), and rows of one batched grid cannot differ here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from peft.tuners.tuners_utils import BaseTunerLayer

# per component: adapter key -> (module name -> strength), for the adapters that are to be summed in, and which
# of them are fused (only for the snapshot's state)
Terms = tuple[tuple[str, float, bool], ...]


def parameter(model: torch.nn.Module, module: str, name: str) -> torch.nn.Parameter:
    """``name`` of ``module`` in ``model`` (a peft wrapper's parameter lives on its base layer)."""
    found = model.get_submodule(module) if module else model
    if isinstance(found, BaseTunerLayer):
        found = found.get_base_layer()
    return getattr(found, name)


@dataclass
class _Param:
    module: str
    name: str
    deltas: dict[str, torch.Tensor] = field(default_factory=dict)  # adapter key -> difference (its dtype)
    original: torch.Tensor | None = None  # kept while written
    written: Terms = ()


class ParamDeltas:
    """One pipeline's parameter differences, per (component, parameter path); owned by its PipelineOwner."""

    def __init__(self):
        self._params: dict[tuple[str, str], _Param] = {}

    def add(self, key: str, component: str, path: str, module: str, name: str, delta: torch.Tensor) -> None:
        param = self._params.setdefault((component, path), _Param(module, name))
        param.deltas[key] = delta

    def keys(self) -> set[str]:
        return {key for p in self._params.values() for key in p.deltas}

    def touches(self, key: str) -> bool:
        return any(key in p.deltas for p in self._params.values())

    def count(self, key: str) -> int:
        return sum(key in p.deltas for p in self._params.values())

    def tensors(self, key: str) -> list[torch.Tensor]:
        return [p.deltas[key] for p in self._params.values() if key in p.deltas]

    def remove(self, key: str, models: dict[str, torch.nn.Module], in_place: bool = False) -> None:
        """Forget ``key``'s differences; a parameter it was summed into is written again without it."""
        for (component, path), param in list(self._params.items()):
            if param.deltas.pop(key, None) is None:
                continue
            if any(k == key for k, _, _ in param.written):
                self._write(models[component], param, tuple(t for t in param.written if t[0] != key), in_place)
            if not param.deltas:
                del self._params[(component, path)]

    def write(self, models: dict[str, torch.nn.Module], strengths: Callable[[str], dict], fused: Callable[[str], set],
              in_place: bool = False, components=None) -> None:
        """Every parameter of ``components`` (default: all) to its original plus its adapters' differences at
        ``strengths(component)`` (adapter key -> module name -> strength; absent adapters add nothing)."""
        for (component, _path), param in self._params.items():
            if (components is not None and component not in components) or component not in models:
                continue
            chosen, baked = strengths(component), fused(component)
            terms = tuple((key, float(chosen[key](param.module)), key in baked) for key in chosen
                          if key in param.deltas)
            if terms != param.written:
                self._write(models[component], param, terms, in_place)

    def restore(self, models: dict[str, torch.nn.Module], in_place: bool = False) -> None:
        """Every written parameter back to its original, bit for bit."""
        for (component, _path), param in self._params.items():
            if param.written and component in models:
                self._write(models[component], param, (), in_place)

    def summed(self, component: str, strengths: dict) -> dict[str, tuple[str, str, torch.Tensor]]:
        """path -> (module, param, the difference ``strengths`` (adapter key -> module name -> strength) add), in
        float32, for the parameters of ``component`` they change."""
        out = {}
        for (c, path), param in self._params.items():
            if c != component:
                continue
            terms = [(strengths[k](param.module), d) for k, d in param.deltas.items() if k in strengths]
            terms = [(w, d) for w, d in terms if w != 0.0]
            if terms:
                total = sum(w * d.float() for w, d in terms)
                out[path] = (param.module, param.name, total)
        return out

    def strengths(self, key: str, component: str) -> list[tuple[float, bool]]:
        """(strength, fused) of ``key`` in each parameter of ``component`` it was last written into."""
        return [(w, baked) for (c, _), p in self._params.items() if c == component
                for k, w, baked in p.written if k == key]

    def _write(self, model: torch.nn.Module, param: _Param, terms: Terms, in_place: bool) -> None:
        live = parameter(model, param.module, param.name)
        if param.original is None:
            param.original = live.data.clone() if in_place else live.data
        original = param.original
        adding = [(key, strength) for key, strength, _ in terms if strength != 0.0]
        if not adding:  # nothing to add (strength 0 included): the original itself, bit for bit
            value = original
        else:
            total = original.float().clone()
            for key, strength in adding:
                total += strength * param.deltas[key].to(device=total.device, dtype=torch.float32)
            value = total.to(original.dtype)
        if in_place:
            live.data.copy_(value)
        else:
            live.data = value
        param.written = terms
        if not terms:
            param.original = None
