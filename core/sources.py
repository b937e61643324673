"""Where an adapter's content comes from: a file, a folder (+ weight name), or a dict in memory.

The same forms diffusers' ``load_lora_weights`` takes. Files are read through the runtime's store
(hashed while read); an in-memory dict gets a content hash the same way (its safetensors bytes), so
branch keys, the panel and saved-image hashes work alike for both.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from types import MappingProxyType

import torch
from safetensors.torch import save as safetensors_bytes

from .errors import LoraFileError, SpecError
from .families import CLIP_GROUP, MODEL_GROUP
from .files import LoraFile, allowed_suffixes
from .specs import AdapterSpec, check_strength

MEMORY_PREFIX = "<memory>"


def in_memory(tensors: Mapping, alphas: Mapping | None = None, label: str = "state_dict") -> LoraFile:
    """A ``dict[str, Tensor]`` (+ diffusers-style ``network_alphas``) as a parsed file, hashed by content."""
    if not isinstance(tensors, Mapping) or not tensors:
        raise SpecError(f"an in-memory LoRA must be a non-empty dict of name -> tensor, got {type(tensors).__name__}")
    bad = [str(k)[:80] for k, v in tensors.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise SpecError(f"an in-memory LoRA maps names to tensors; these entries are not: {bad[:3]}")
    merged = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    for key, value in (alphas or {}).items():
        merged[key if key.endswith(".alpha") else f"{key}.alpha"] = torch.tensor(float(value))
    data = safetensors_bytes(merged)
    return LoraFile(path=f"{MEMORY_PREFIX}{label}", sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                    metadata=MappingProxyType({}), tensors=MappingProxyType(merged))


def weight_file(folder: str, weight_name: str | None = None, allow_pickle: bool = False) -> str:
    """The LoRA file inside ``folder``: ``weight_name``, or the only candidate; several is an error listing them."""
    if weight_name:
        path = os.path.join(folder, weight_name)
        if os.path.dirname(os.path.normpath(weight_name)) or not os.path.isfile(path):
            choices = ", ".join(_candidates(folder, allow_pickle)) or "none"
            raise LoraFileError(path, "is not a file in that folder", f"Pick one of: {choices}")
        return path
    found = _candidates(folder, allow_pickle)
    if len(found) != 1:
        what = "holds no LoRA file" if not found else f"holds {len(found)} LoRA files: {', '.join(found[:8])}"
        raise LoraFileError(folder, what, "Pass weight_name= to say which file to load.")
    return os.path.join(folder, found[0])


def _candidates(folder: str, allow_pickle: bool) -> list[str]:
    suffixes = allowed_suffixes(allow_pickle)
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(suffixes) and
                  os.path.isfile(os.path.join(folder, f)))


def adapter_spec(path: str, sha256: str, name: str | None, strength_model: float = 1.0,
                 strength_clip: float = 1.0, memory: LoraFile | None = None) -> AdapterSpec:
    """An AdapterSpec with a display name (the file's stem unless given) and checked strengths."""
    display = (name or "").strip() or os.path.splitext(os.path.basename(path))[0].removeprefix(MEMORY_PREFIX)
    weights = {MODEL_GROUP: check_strength(strength_model, "strength_model"),
               CLIP_GROUP: check_strength(strength_clip, "strength_clip")}
    real = path if memory is not None else os.path.realpath(path)
    return AdapterSpec(path=real, sha256=sha256, name=display, weights=weights, memory=memory)
