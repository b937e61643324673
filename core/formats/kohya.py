"""kohya-ss / A1111 LoRA and LoCon: ``lora_unet_<flat_module>.lora_down.weight`` and friends.

Module names are the model's dotted names with ``.`` replaced by ``_``; they are resolved
against the real model later (see ``resolve.py``), which is the only exact way to undo that.
"""

from __future__ import annotations

from .patch import ConvertedLora, ModulePatch

SUFFIXES = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}


def is_kohya(keys, prefixes) -> bool:
    return any(k.startswith(p) and k.endswith(".lora_down.weight") for k in keys for p, _ in prefixes)


def _split(key: str, prefixes) -> tuple[str, str, str] | None:
    # ("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight") -> (component, flat name, part)
    stem, _, suffix = key.partition(".")
    part = SUFFIXES.get(suffix)
    if part is None:
        return None
    for prefix, component in sorted(prefixes, key=lambda p: -len(p[0])):
        if stem.startswith(prefix):
            return component, stem[len(prefix) :], part
    return None


def convert_kohya(state_dict, prefixes) -> ConvertedLora:
    """Pure: kohya state dict -> patches per component. ``prefixes`` maps key prefix -> component."""
    parts: dict[tuple[str, str], dict] = {}
    ignored = []
    for key, tensor in state_dict.items():
        split = _split(key, prefixes)
        if split is None:
            ignored.append(key)
            continue
        component, name, part = split
        parts.setdefault((component, name), {})[part] = tensor
    patches: dict[str, dict[str, ModulePatch]] = {}
    for (component, name), p in parts.items():
        if "down" not in p or "up" not in p:
            ignored.extend(f"{name}.{k}" for k in p)
            continue
        alpha = float(p["alpha"].float().item()) if "alpha" in p else None
        patches.setdefault(component, {})[name] = ModulePatch(down=p["down"], up=p["up"], alpha=alpha)
    return ConvertedLora("kohya", patches, tuple(sorted(ignored)))
