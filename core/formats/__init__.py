"""Format detection by key layout, then one pure converter per source format.

Every format ends as ``ModulePatch`` pairs (``up @ down * alpha / rank``, optionally DoRA), so
the rest of the core applies them all the same way.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ..errors import LoraFileError
from ..models.family import Family
from .base_guess import guess_made_for
from .diffusers_fmt import convert_diffusers, is_diffusers
from .kohya import KNOWN_PREFIXES, convert_kohya, is_kohya
from .patch import ANY_COMPONENT, AnyPatch, ConvertedLora, FormatError, LazyPatch, ModulePatch, ParamDelta
from .peft_config import ConfigError
from .xlabs import convert_xlabs, is_xlabs

__all__ = ["ANY_COMPONENT", "AnyPatch", "ConvertedLora", "LazyPatch", "ModulePatch", "ParamDelta", "convert"]
KOHYA_STEMS = tuple(p for p, _ in KNOWN_PREFIXES)

# (detector, converter) in order: kohya-style names first (their prefixes are unambiguous), then XLabs'
# processor names, then diffusers/PEFT (whose suffixes are the most generic).
_FORMATS = (
    (lambda keys, family: is_kohya(keys, family.kohya_prefixes),
     lambda tensors, metadata, family: convert_kohya(tensors, family.kohya_prefixes)),
    (lambda keys, family: is_xlabs(keys),
     lambda tensors, metadata, family: convert_xlabs(tensors, family.denoiser)),
    (lambda keys, family: is_diffusers(keys),
     lambda tensors, metadata, family: convert_diffusers(tensors, metadata, family)),
)


def _no_module(path: str, converted: ConvertedLora) -> LoraFileError:
    if converted.notes:
        return LoraFileError(path, f"has no module LoRA Deck can apply ({'; '.join(converted.notes)})",
                             "Use a LoRA, LoCon, LoHa, LoKr or DoRA file.")
    return LoraFileError(path, "contains no complete LoRA module (no down/up pair)",
                         "The file is incomplete; re-download or re-export it.")


def convert(path: str, tensors, metadata, family: Family) -> ConvertedLora:
    """Detect the layout of ``tensors`` and convert it to patches per component of ``family``."""
    keys = list(tensors)
    for detect, run in _FORMATS:
        if detect(keys, family):
            try:
                converted = run(tensors, metadata, family)
            except ConfigError as exc:
                raise LoraFileError(path, f"carries a LoRA config LoRA Deck cannot use ({exc})",
                                    "Re-save the adapter with peft's standard LoRA settings.") from None
            except FormatError as exc:
                raise LoraFileError(path, f"has tensors that do not fit together ({exc})",
                                    "The file is damaged or was written by a faulty tool; re-download or "
                                    "re-export it.") from None
            break
    else:
        sample = ", ".join(keys[:3])
        hint = guess_made_for(keys, ConvertedLora("", {}))
        seems = f"; it looks like a LoRA for {hint}" if hint else ""
        raise LoraFileError(path, f"has a key layout LoRA Deck does not recognise (first keys: {sample}){seems}",
                            "If it is a LoRA from a trainer we do not know yet, please report it with these keys.")
    if converted.total == 0:
        raise _no_module(path, converted)
    unknown = unknown_modules(keys, converted.ignored)
    return replace(converted, made_for=guess_made_for(keys, converted), unknown=unknown)


# A module's keys end in parts like these; what is left is the module's name in the file (its "stem"). Matched
# one dot-separated piece at a time: as one pattern over the whole key, a key like ``x.lora_lora.lora_lora...``
# (two alternatives fit each piece) took exponential time to fail.
_PART = re.compile(r"lora_[A-Za-z]+|lora|alpha|weight|bias|diff(_b)?|hada_\w+|lokr_\w+|dora_scale|down|up|"
                   r"default|processor|[a-z]+_lora\d?|lora_magnitude_vector|oft_\w+|[ab][12]|on_input|w_norm")


def _stem(key: str) -> str:
    head, dot, _ = key.partition(".")
    if dot and head.startswith(KOHYA_STEMS):
        return head
    pieces = key.split(".")
    while len(pieces) > 1 and _PART.fullmatch(pieces[-1]):
        pieces.pop()
    return ".".join(pieces)


def unknown_modules(keys, ignored) -> int:
    """How many modules of the file no converter understood: stems of ignored keys that no used key shares."""
    ignored = set(ignored)
    understood = {_stem(k) for k in keys if k not in ignored}
    return len({_stem(k) for k in ignored} - understood)
