"""Where adapters' LoRA tensors live: diffusers' ``set_lora_device``, and parking inactive adapters.

An adapter the applied stack does not use stays loaded (switching back to it is a scale write), but on
an accelerator it need not hold accelerator memory: it is parked on ``Settings.park_device`` (the CPU)
and moved back to its layers' device when a stack uses it again. Adapters the stack uses always live on
their layers' device, so a forward pass never meets a tensor on the wrong device. On a CPU pipeline
parking is a no-op (both devices are the same).
"""

from __future__ import annotations

import torch

from .peft_ops import adapter_weight, adapters_of, base_weight


def _layer_device(layer) -> torch.device:
    return base_weight(layer).device


def adapter_device(layer, key: str) -> torch.device:
    return adapter_weight(layer, key).device


def _move_layer(layer, key: str, device: torch.device | None) -> None:
    """Move one adapter's modules on one layer (None: to the layer's own device); tensors already there stay."""
    target = _layer_device(layer) if device is None else device
    for attribute in ("lora_A", "lora_B", "lora_magnitude_vector"):
        modules = getattr(layer, attribute, None)
        if modules is not None and key in modules and any(p.device != target for p in modules[key].parameters()):
            modules[key] = modules[key].to(target)


def move(owner, keys, device) -> None:
    """Move adapters ``keys`` to ``device`` on every layer carrying them (``set_lora_device``)."""
    device = torch.device(device)
    for component in owner.models():
        for key in keys:
            for _, layer in owner.carriers(component, key):
                _move_layer(layer, key, device)


def place(owner, wanted: set[str]) -> None:
    """Adapters in ``wanted`` on their layers' devices; the other loaded ones parked (when parking is on
    and the pipeline does not live on the park device already)."""
    park = owner.runtime.settings.park_device
    park = torch.device(park) if park else None
    for component in owner.models():
        index = owner.index(component)
        for key in index.adapter_keys():
            carriers = index.carriers(key)
            if key in wanted:
                for _, layer in carriers:
                    if adapter_device(layer, key) != _layer_device(layer):
                        _move_layer(layer, key, None)
            elif park is not None and carriers and _layer_device(carriers[0][1]) != park:
                for _, layer in carriers:
                    _move_layer(layer, key, park)


def parked(owner, key: str) -> bool:
    """Whether adapter ``key`` is away from its layers' device (read back from its layers)."""
    for component in owner.models():
        for _, layer in owner.carriers(component, key):
            if key in adapters_of(layer) and adapter_device(layer, key) != _layer_device(layer):
                return True
    return False
