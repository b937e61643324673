"""diffusers / PEFT layouts: ``unet.<module>.lora_A.weight``, ``base_model.model.<module>.lora_A.weight``,
and the older attention-processor form ``[unet.]<module>.processor.to_q_lora.down.weight``.

Keys without a component prefix (PEFT files, old unprefixed files) go to ``ANY_COMPONENT`` and
are matched against every component of the pipeline by ``resolve``. A PEFT DoRA magnitude
(``lora_magnitude_vector``) becomes the patch's ``dora_scale``.
"""

from __future__ import annotations

import json
import re

from .patch import ANY_COMPONENT, ConvertedLora, ModulePatch, alpha_of

METADATA_KEY = "lora_adapter_metadata"  # diffusers' save_lora_weights stores the LoraConfig here
PEFT_PREFIX = "base_model.model."
_PARTS = {
    ".lora_A.weight": "down", ".lora_B.weight": "up", ".lora_A.default.weight": "down",
    ".lora_B.default.weight": "up", ".alpha": "alpha", ".lora_magnitude_vector": "dora",
    ".lora_magnitude_vector.weight": "dora", ".lora_magnitude_vector.default.weight": "dora",
    ".lora.down.weight": "down", ".lora.up.weight": "up",
    ".lora_linear_layer.down.weight": "down", ".lora_linear_layer.up.weight": "up",
}
_SUFFIXES = sorted(_PARTS, key=len, reverse=True)  # longest first: ".lora_A.default.weight" before ".weight" forms
# processor.to_q_lora.down.weight -> to_q ; processor.to_out_lora.down.weight -> to_out.0
_PROCESSOR = re.compile(r"\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down\.weight|up\.weight|alpha)$")
_PROCESSOR_PARTS = {"down.weight": "down", "up.weight": "up", "alpha": "alpha"}
_OLD_MARKERS = (".processor.", ".lora.down.", ".lora.up.", ".lora_linear_layer.")


def is_diffusers(keys) -> bool:
    return any((split := _split(k)) is not None and split[1] == "down" for k in keys)


def _split(key: str) -> tuple[str, str] | None:
    # "unet.a.b.lora_A.weight" -> ("unet.a.b", "down")
    match = _PROCESSOR.search(key)
    if match:
        target = "to_out.0" if match.group(1) == "to_out" else match.group(1)
        return key[: match.start()] + "." + target, _PROCESSOR_PARTS[match.group(2)]
    for suffix in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], _PARTS[suffix]
    return None


def _component(name: str, components) -> tuple[str, str]:
    # "text_encoder_2.encoder.layers.0..." -> ("text_encoder_2", "encoder.layers.0...")
    name = name.removeprefix(PEFT_PREFIX)
    head, _, rest = name.partition(".")
    return (head, rest) if head in components and rest else (ANY_COMPONENT, name)


def _alpha_lookup(metadata, component: str):
    """Per-module alpha from diffusers' saved LoraConfig, or None when the file has none."""
    raw = metadata.get(METADATA_KEY)
    if not raw:
        return lambda name: None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError:
        return lambda name: None
    base = config.get(f"{component}.lora_alpha") if isinstance(config, dict) else None
    pattern = (config.get(f"{component}.alpha_pattern") if isinstance(config, dict) else None) or {}

    def lookup(name: str):
        for key, value in pattern.items():
            if re.match(rf"(.*\.)?({key})$", name):
                return float(value)
        return None if base is None else float(base)

    return lookup


def _label(keys, dora: bool) -> str:
    if any(k.startswith(PEFT_PREFIX) for k in keys):
        name = "PEFT"
    elif any(m in k for k in keys for m in _OLD_MARKERS):
        name = "diffusers (attention processors)"
    else:
        name = "diffusers"
    return name + (" with DoRA" if dora else "")


def _group(state_dict, components):
    parts: dict[tuple[str, str], dict] = {}
    ignored = []
    for key, tensor in state_dict.items():
        split = _split(key)
        if split is None:
            ignored.append(key)
            continue
        name, part = split
        parts.setdefault(_component(name, components), {})[part] = tensor
    return parts, ignored


def convert_diffusers(state_dict, metadata, components) -> ConvertedLora:
    """Pure: diffusers/PEFT state dict -> patches per component (unprefixed keys: ``ANY_COMPONENT``)."""
    parts, ignored = _group(state_dict, components)
    lookups = {c: _alpha_lookup(metadata, c) for c in {c for c, _ in parts}}
    patches: dict[str, dict[str, ModulePatch]] = {}
    for (component, name), p in parts.items():
        if "down" not in p or "up" not in p:
            ignored.extend(f"{component}:{name}.{k}" for k in p)
            continue
        alpha = alpha_of(p) if "alpha" in p else lookups[component](name)
        patch = ModulePatch(down=p["down"], up=p["up"], alpha=alpha, dora_scale=p.get("dora"))
        patches.setdefault(component, {})[name] = patch
    dora = any(p.dora_scale is not None for c in patches.values() for p in c.values())
    return ConvertedLora(_label(state_dict.keys(), dora), patches, tuple(sorted(ignored)))
