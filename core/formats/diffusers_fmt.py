"""diffusers / PEFT layouts: ``unet.<module>.lora_A.weight``, ``base_model.model.<module>.lora_A.weight``,
and the older attention-processor form ``<module>.processor.to_q_lora.down.weight``."""

from __future__ import annotations

import json
import re

from .patch import ConvertedLora, ModulePatch

METADATA_KEY = "lora_adapter_metadata"  # diffusers' save_lora_weights stores the LoraConfig here
PEFT_PREFIX = "base_model.model."
_PEFT_PARTS = {".lora_A.weight": "down", ".lora_B.weight": "up", ".alpha": "alpha"}
_OLD_PARTS = {".lora.down.weight": "down", ".lora.up.weight": "up", ".lora_linear_layer.down.weight": "down",
              ".lora_linear_layer.up.weight": "up"}
# processor.to_q_lora.down.weight -> to_q ; processor.to_out_lora.down.weight -> to_out.0
_PROCESSOR = re.compile(r"\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")


def is_diffusers(keys) -> bool:
    return any(k.endswith((".lora_A.weight", ".lora.down.weight", "_lora.down.weight",
                           ".lora_linear_layer.down.weight")) for k in keys)


def _split(key: str) -> tuple[str, str] | None:
    match = _PROCESSOR.search(key)
    if match:
        target = "to_out.0" if match.group(1) == "to_out" else match.group(1)
        return key[: match.start()] + "." + target, match.group(2)
    for parts in (_PEFT_PARTS, _OLD_PARTS):
        for suffix, part in parts.items():
            if key.endswith(suffix):
                return key[: -len(suffix)], part
    return None


def _component(name: str, components, default: str) -> tuple[str, str]:
    # "text_encoder_2.encoder.layers.0..." -> ("text_encoder_2", "encoder.layers.0...")
    if name.startswith(PEFT_PREFIX):
        name = name[len(PEFT_PREFIX) :]
    head, _, rest = name.partition(".")
    return (head, rest) if head in components and rest else (default, name)


def _alpha_lookup(metadata, component: str):
    """Per-module alpha from diffusers' saved LoraConfig, or None when the file has none."""
    raw = metadata.get(METADATA_KEY)
    if not raw:
        return lambda name, rank: None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError:
        return lambda name, rank: None
    base = config.get(f"{component}.lora_alpha")
    pattern = config.get(f"{component}.alpha_pattern") or {}

    def lookup(name: str, rank: int):
        for key, value in pattern.items():
            if re.match(rf"(.*\.)?({key})$", name):
                return float(value)
        return None if base is None else float(base)

    return lookup


def convert_diffusers(state_dict, metadata, components, default: str) -> ConvertedLora:
    """Pure: diffusers/PEFT state dict -> patches per component (unprefixed keys go to ``default``)."""
    parts: dict[tuple[str, str], dict] = {}
    ignored = []
    for key, tensor in state_dict.items():
        split = _split(key)
        if split is None:
            ignored.append(key)
            continue
        name, part = split
        component, module = _component(name, components, default)
        parts.setdefault((component, module), {})[part] = tensor
    lookups = {c: _alpha_lookup(metadata, c) for c in {c for c, _ in parts}}
    patches: dict[str, dict[str, ModulePatch]] = {}
    for (component, name), p in parts.items():
        if "down" not in p or "up" not in p:
            ignored.extend(f"{component}.{name}.{k}" for k in p)
            continue
        alpha = float(p["alpha"].float().item()) if "alpha" in p else lookups[component](name, p["down"].shape[0])
        patches.setdefault(component, {})[name] = ModulePatch(down=p["down"], up=p["up"], alpha=alpha)
    return ConvertedLora("diffusers", patches, tuple(sorted(ignored)))
