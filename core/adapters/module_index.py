"""Every name a LoRA file may use for a pipeline's module -> that module (or the modules a fused original layer
splits into).

Files name modules the way their trainer saw the model: diffusers names (``down_blocks.0.attentions.0...``),
kohya's flattened form (``down_blocks_0_attentions_0_...``), transformers 4's ``text_model.`` prefix, SDXL's
original block names (``input_blocks.4.1...``), or the original Flux/SD3 names (``double_blocks.0.img_attn.qkv``).
The index is built once per pipeline from the live modules, so it only ever names modules that exist.
"""

from __future__ import annotations

import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from ..models.family import Family
from ..models.original_names import RowSplit

PATCHABLE = (torch.nn.Linear, torch.nn.Conv2d)
# transformers 4 CLIP text models nest everything under ``text_model``; transformers 5 does not,
# while real kohya/diffusers files still name ``text_model``. Both spellings resolve.
LEGACY_PREFIXES = ("text_model.",)

Target = str | RowSplit


def _targets(model: torch.nn.Module):
    """(name, module) of every module a file may change: Linear/Conv2d layers (low-rank pairs) and any other
    module with parameters of its own (whole parameter differences); a peft wrapper counts as its base layer."""
    skip: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(s) for s in skip):
            continue
        if isinstance(module, BaseTunerLayer):
            skip.append(name + ".")
            module = module.get_base_layer()
        if isinstance(module, PATCHABLE) or any(p is not None for p in module._parameters.values()):
            yield name, module


def _add(index: dict[str, Target], alias: str, target: Target) -> None:
    index.setdefault(alias, target)
    index.setdefault(alias.replace(".", "_"), target)


def module_index(model: torch.nn.Module, family: Family, component: str) -> dict[str, Target]:
    """Alias -> real module name (or RowSplit) for one component of a pipeline of ``family``."""
    extra_aliases = family.aliases_for(component, model)
    index: dict[str, Target] = {}
    for name, _ in _targets(model):
        legacy = tuple(p + name for p in LEGACY_PREFIXES)
        legacy += tuple(name[len(p):] for p in LEGACY_PREFIXES if name.startswith(p))
        extra = tuple(extra_aliases(name)) if extra_aliases is not None else ()
        for alias in (name, *legacy, *extra):
            _add(index, alias, name)
    if family.original_names and component in family.denoisers:
        for original, target in family.original_names(model).items():
            _add(index, original, target)
    return index
