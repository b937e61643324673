"""Where an adapter's content comes from: a file, a folder (+ weight name), or a dict in memory.

The same forms diffusers' ``load_lora_weights`` takes. Files are read through the runtime's store
(hashed while read); an in-memory dict gets a content hash the same way (its safetensors bytes), so
branch keys, the panel and saved-image hashes work alike for both.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

import torch
from safetensors.torch import save as safetensors_bytes

from ..errors import LoraFileError, SpecError
from ..models.family import CLIP_GROUP, MODEL_GROUP
from ..stacks.specs import AdapterSpec, PartFile, check_strength
from .checks import check_tensors
from .reading import LoraFile, allowed_suffixes, check_path

MEMORY_PREFIX = "<memory>"


def in_memory(tensors: Mapping, alphas: Mapping | None = None, label: str = "state_dict") -> LoraFile:
    """A ``dict[str, Tensor]`` (+ diffusers-style ``network_alphas``) as a parsed file, hashed by content.

    The dict passes the same checks as a file's content (``file_checks``) before anything reads it."""
    if not isinstance(tensors, Mapping) or not tensors:
        raise SpecError(f"an in-memory LoRA must be a non-empty dict of name -> tensor, got {type(tensors).__name__}")
    bad = [str(k)[:80] for k, v in tensors.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise SpecError(f"an in-memory LoRA maps names to tensors; these entries are not: {bad[:3]}")
    if alphas is not None and not isinstance(alphas, Mapping):
        raise SpecError(f"network_alphas must be a dict of name -> number, got {type(alphas).__name__}")
    merged = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    for key, value in (alphas or {}).items():
        merged[key if key.endswith(".alpha") else f"{key}.alpha"] = torch.tensor(_alpha(key, value))
    path = f"{MEMORY_PREFIX}{label}"
    merged = check_tensors(path, merged)
    try:
        data = safetensors_bytes(merged)
    except RuntimeError:  # entries sharing memory (views of one tensor): safetensors wants them apart
        data = safetensors_bytes({k: v.clone() for k, v in merged.items()})
    return LoraFile(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                    metadata=MappingProxyType({}), tensors=MappingProxyType(merged))


def _alpha(key, value) -> float:
    try:
        if isinstance(key, str) and not isinstance(value, (bool, str)):
            return float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several numbers
        pass
    raise SpecError(f"network_alphas maps names to numbers; {str(key)[:80]!r} -> {str(value)[:40]!r} is not one")


def weight_file(folder: str, weight_name: str | None = None, allow_pickle: bool = False) -> str:
    """The LoRA file inside ``folder``: ``weight_name``, or the only candidate; several is an error listing them."""
    if weight_name:
        path = os.path.join(folder, check_path(weight_name))
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
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise LoraFileError(folder, f"cannot be listed ({exc.strerror})", "Check the folder's permissions.") from None
    return sorted(f for f in names if f.lower().endswith(suffixes) and os.path.isfile(os.path.join(folder, f)))


def adapter_spec(path: str, sha256: str, name: str | None, strength_model: float = 1.0,
                 strength_clip: float = 1.0, memory: LoraFile | None = None) -> AdapterSpec:
    """An AdapterSpec with a display name (the file's stem unless given) and checked strengths."""
    if name is not None and not isinstance(name, str):
        raise SpecError(f"an adapter name is text, got {type(name).__name__}")
    display = (name or "").strip() or os.path.splitext(os.path.basename(path))[0].removeprefix(MEMORY_PREFIX)
    weights = {MODEL_GROUP: check_strength(strength_model, "strength_model"),
               CLIP_GROUP: check_strength(strength_clip, "strength_clip")}
    real = path if memory is not None else os.path.realpath(path)
    return AdapterSpec(path=real, sha256=sha256, name=display, weights=weights, memory=memory)


def pair_spec(high: AdapterSpec, low: AdapterSpec, expert: str, high_strength: float = 1.0,
              low_strength: float = 1.0, name: str | None = None) -> AdapterSpec:
    """One adapter from a high-noise / low-noise pair of files (Wan 2.2): ``high``'s file serves every component
    but ``expert`` (the denoiser, and the text encoders should it have parts for them), ``low``'s file serves
    ``expert``. Strengths: ``model`` = ``high_strength`` (both experts), and ``expert`` = ``low_strength`` of its own
    when the two differ (a component's strength beats its group's, so a later plain number changes the high-noise
    expert alone then). The name: ``name``, else what the two file names share (``x_HIGH`` + ``x_LOW`` -> ``x``)."""
    if name is not None and not isinstance(name, str):
        raise SpecError(f"an adapter name is text, got {type(name).__name__}")
    display = (name or "").strip() or shared_stem(high.name, low.name)
    high_strength = check_strength(high_strength, "strength_high")
    low_strength = check_strength(low_strength, "strength_low")
    weights = {**high.weight_map, MODEL_GROUP: high_strength}
    if low_strength != high_strength:
        weights[expert] = low_strength
    return replace(high, name=display, weights=weights,
                   part_files=(PartFile(expert, low.path, low.sha256, low.memory),))


def shared_stem(first: str, second: str) -> str:
    """The start two names share, without a trailing separator ("x_high_noise", "x_low_noise" -> "x"); the first
    name when they share nothing useful."""
    common = os.path.commonprefix([first, second]).rstrip("_-. ")
    for word in ("high", "low", "HIGH", "LOW", "High", "Low"):  # "x_high" / "x_hi" share "x_h"
        common = common.removesuffix(word[: len(common)])
    common = common.rstrip("_-. ")
    return common if len(common) >= 2 else first
