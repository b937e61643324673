"""Which peft layers a component has, and which of them carry each adapter, kept up to date by the owner.

A strength change must cost a scale write per layer that carries the adapter, so the owner never walks a
big model's modules for it: the walk happens once, and injecting or deleting an adapter updates the
index from what it touched. Lists are in module order (the order ``named_modules`` gives).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from .peft_ops import adapters_of


class ScaleSlot(NamedTuple):
    """Where one layer keeps adapter ``key``'s scale: peft's ``scaling`` dict of that layer (its forward reads
    it) and peft's ``set_scale`` arithmetic for it, ``scaling[key] = strength * alpha / divisor``."""

    name: str
    scaling: dict
    alpha: float
    divisor: float  # the rank, or its square root for rsLoRA


def _slot(name: str, layer, key: str) -> ScaleSlot:
    rank = layer.r[key]
    return ScaleSlot(name, layer.scaling, layer.lora_alpha[key],
                     math.sqrt(rank) if layer.use_rslora.get(key, False) else rank)


class LayerIndex:
    def __init__(self, model: torch.nn.Module):
        self._order: dict[str, int] = {}
        self._layers: dict[str, BaseTunerLayer] = {}
        self.modules: dict[str, torch.nn.Module] = {}  # name -> module at the walk: right for containers
        for i, (name, module) in enumerate(model.named_modules()):
            self._order[name] = i
            self.modules[name] = module
            if isinstance(module, BaseTunerLayer):
                self._layers[name] = module
        self._carriers: dict[str, list] = {}
        for name, layer in self._layers.items():
            for key in adapters_of(layer):
                self._carriers.setdefault(key, []).append((name, layer))
        self._pairs: list | None = None
        self._slots: dict[str, tuple[ScaleSlot, ...]] = {}

    def _sorted(self, pairs) -> list:
        end = len(self._order)
        return sorted(pairs, key=lambda p: self._order.get(p[0], end))

    def pairs(self) -> list[tuple[str, BaseTunerLayer]]:
        """Every (name, peft layer) of the component, in module order."""
        if self._pairs is None:
            self._pairs = self._sorted(self._layers.items())
        return self._pairs

    def carriers(self, key: str) -> list[tuple[str, BaseTunerLayer]]:
        """The (name, layer) pairs carrying adapter ``key``, in module order."""
        return self._carriers.get(key, [])

    def slots(self, key: str) -> tuple[ScaleSlot, ...]:
        """The scale slots of adapter ``key``, one per carrying layer in module order: a strength change
        writes these dicts and nothing else (no module attribute lookups, no layer objects touched)."""
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = tuple(_slot(name, layer, key) for name, layer in self.carriers(key))
        return slots

    def adapter_keys(self) -> tuple[str, ...]:
        return tuple(self._carriers)

    def added(self, key: str, carriers) -> None:
        """Adapter ``key`` was injected into these layers (some of them new wrappers)."""
        for name, layer in carriers:
            self.wrapped(name, layer)
        self._carriers[key] = self._sorted(carriers)
        self._slots.pop(key, None)

    def wrapped(self, name: str, layer: BaseTunerLayer) -> None:
        if self._layers.get(name) is not layer:
            self._layers[name] = layer
            self._pairs = None

    def deleted(self, key: str, unwrapped) -> None:
        """Adapter ``key`` was removed; ``unwrapped`` layers went back to their base modules."""
        self._carriers.pop(key, None)
        self._slots.pop(key, None)
        for name in unwrapped:
            self._layers.pop(name, None)
        if unwrapped:
            self._pairs = None
