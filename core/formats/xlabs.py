"""XLabs (x-flux) Flux LoRA files: ``double_blocks.N.processor.qkv_lora1.down.weight`` and friends.

x-flux trains LoRA processors beside the original Flux attention (``src/flux/modules/layers.py``
``DoubleStreamBlockLoraProcessor`` / ``SingleStreamBlockLoraProcessor``): ``qkv_lora1``/``proj_lora1`` act on the
image stream's ``img_attn.qkv``/``img_attn.proj``, ``qkv_lora2``/``proj_lora2`` on the text stream's; in single
blocks ``qkv_lora`` adds to the q, k, v rows of ``linear1`` (not its MLP rows) and ``proj_lora`` to ``linear2``.
The files store no alpha (scale 1). Names become original Flux names, which the module index resolves.
"""

from __future__ import annotations

import re

from .patch import ConvertedLora, ModulePatch, module_named

_KEY = re.compile(r"^(double_blocks|single_blocks)\.(\d+)\.processor\.(qkv|proj)_lora([12]?)\.(down|up)\.weight$")
TARGETS = {("double_blocks", "qkv", "1"): "img_attn.qkv", ("double_blocks", "proj", "1"): "img_attn.proj",
           ("double_blocks", "qkv", "2"): "txt_attn.qkv", ("double_blocks", "proj", "2"): "txt_attn.proj",
           ("single_blocks", "qkv", ""): "linear1_qkv", ("single_blocks", "proj", ""): "linear2"}


def is_xlabs(keys) -> bool:
    return any(_KEY.match(k) for k in keys)


def convert_xlabs(state_dict, denoiser: str) -> ConvertedLora:
    """Pure: an x-flux state dict -> patches of the denoiser under original Flux names."""
    parts: dict[str, dict] = {}
    ignored = []
    for key, tensor in state_dict.items():
        match = _KEY.match(key)
        target = TARGETS.get(match.group(1, 3, 4)) if match else None
        if target is None:
            ignored.append(key)
            continue
        parts.setdefault(f"{match.group(1)}.{match.group(2)}.{target}", {})[match.group(5)] = (key, tensor)
    patches = {}
    for name, found in parts.items():
        if "down" in found and "up" in found:
            with module_named(name):
                patches[name] = ModulePatch(down=found["down"][1], up=found["up"][1])
        else:
            ignored.extend(key for key, _ in found.values())
    return ConvertedLora("XLabs", {denoiser: patches} if patches else {}, tuple(sorted(ignored)))
