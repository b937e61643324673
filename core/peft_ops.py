"""Thin operations on peft LoRA layers: inject, delete, activate with scales.

peft owns the layers and the forward math; these helpers only decide which adapters are
active where and at what scale. Loading never changes what the model computes: a new
adapter starts inactive and is switched on by ``activate``.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter

import torch
from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer

from .formats import ModulePatch
from .fusion import ORIGINAL, WeightFn


def lora_layers(model: torch.nn.Module) -> list[tuple[str, BaseTunerLayer]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def adapters_of(layer: BaseTunerLayer) -> set[str]:
    return set(getattr(layer, "lora_A", {}).keys())


def exact_pattern(name: str) -> str:
    """A rank/alpha pattern key that matches module ``name`` only.

    peft (and diffusers) match pattern keys as ``(.*\\.)?(key)$``, so a plain ``proj_out`` also hits
    ``single_transformer_blocks.0.proj_out``; the look-behind forbids anything before the name.
    """
    return r"(?<![\w.])" + re.escape(name)


def _config(patches: dict[str, ModulePatch]) -> LoraConfig:
    ranks = {n: p.rank for n, p in patches.items()}
    alphas = {n: float(p.rank if p.alpha is None else p.alpha) for n, p in patches.items()}
    r = Counter(ranks.values()).most_common(1)[0][0]
    alpha = Counter(alphas.values()).most_common(1)[0][0]
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=sorted(patches),
        rank_pattern={exact_pattern(n): v for n, v in ranks.items() if v != r},
        alpha_pattern={exact_pattern(n): v for n, v in alphas.items() if v != alpha},
        init_lora_weights=False,
    )


def inject(model: torch.nn.Module, key: str, patches: dict[str, ModulePatch]) -> None:
    """Add adapter ``key`` with exactly these patches; it starts inactive everywhere."""
    before = {n: list(m.active_adapters) for n, m in lora_layers(model)}
    device = next(model.parameters()).device
    state = {}
    for name, patch in patches.items():
        state[f"{name}.lora_A.weight"] = patch.down.to(device)
        state[f"{name}.lora_B.weight"] = patch.up.to(device)
    previous = dict(getattr(model, "peft_config", {}) or {})
    if hasattr(model, "peft_config"):
        del model.peft_config
    config = _config(patches)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inject_adapter_in_model(config, model, adapter_name=key, low_cpu_mem_usage=True)
            result = set_peft_model_state_dict(model, state, adapter_name=key, low_cpu_mem_usage=True)
    finally:
        model.peft_config = {**previous, **({key: config} if _has_adapter(model, key) else {})}
    missing = [k for k in result.unexpected_keys if key in k] if result is not None else []
    if missing:
        raise RuntimeError(f"peft did not place {len(missing)} tensors, e.g. {missing[0]}")
    for name, layer in lora_layers(model):
        layer.set_adapter(before.get(name, []), inference_mode=True)
    _mark_peft_loaded(model)


def _has_adapter(model, key: str) -> bool:
    return any(key in adapters_of(m) for _, m in lora_layers(model))


def _mark_peft_loaded(model) -> None:
    # diffusers' own adapter methods check this flag; keep the model usable with them.
    model._hf_peft_config_loaded = bool(getattr(model, "peft_config", None))


def delete(model: torch.nn.Module, key: str) -> None:
    """Remove adapter ``key`` and unwrap layers left without adapters."""
    for _, layer in lora_layers(model):
        if key in adapters_of(layer):
            active = [a for a in layer.active_adapters if a != key]
            layer.delete_adapter(key)
            layer.set_adapter(active, inference_mode=True)
    if getattr(model, "peft_config", None):
        model.peft_config.pop(key, None)
        if not model.peft_config:
            del model.peft_config
    unwrap_empty(model)
    _mark_peft_loaded(model)


def unwrap_empty(model: torch.nn.Module) -> None:
    for name, layer in lora_layers(model):
        if not adapters_of(layer) and not hasattr(layer, ORIGINAL):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, layer.get_base_layer())


def activate(layers, active: dict[str, WeightFn]) -> None:
    """Make exactly ``active`` adapters active on each layer, each at its strength for that module.

    A scale write per layer: no tensors move, nothing is reloaded.
    """
    for name, layer in layers:
        present = [k for k in active if k in layer.scaling]
        if list(layer.active_adapters) != present:
            layer.set_adapter(present, inference_mode=True)
        for k in present:
            layer.set_scale(k, active[k](name))
