"""Format detection by key layout, then one pure converter per source format."""

from __future__ import annotations

from ..errors import LoraFileError
from ..families import Family
from .diffusers_fmt import convert_diffusers, is_diffusers
from .kohya import convert_kohya, is_kohya
from .patch import ConvertedLora, ModulePatch

__all__ = ["ConvertedLora", "ModulePatch", "convert"]

_UNSUPPORTED = {
    "hada_w1_a": "LyCORIS LoHa",
    "lokr_w1": "LyCORIS LoKr",
    "dora_scale": "DoRA",
    "lora_magnitude_vector": "DoRA",
}


def _refuse_unsupported(path: str, keys) -> None:
    for marker, kind in _UNSUPPORTED.items():
        if any(marker in k for k in keys):
            raise LoraFileError(path, f"is a {kind} file, which this version cannot apply yet",
                                "Use a plain LoRA/LoCon file for now.")


def convert(path: str, tensors, metadata, family: Family) -> ConvertedLora:
    """Detect the layout of ``tensors`` and convert it to patches per component of ``family``."""
    keys = list(tensors)
    _refuse_unsupported(path, keys)
    if is_kohya(keys, family.kohya_prefixes):
        converted = convert_kohya(tensors, family.kohya_prefixes)
    elif is_diffusers(keys):
        converted = convert_diffusers(tensors, metadata, family.components, family.denoiser)
    else:
        sample = ", ".join(keys[:3])
        raise LoraFileError(path, f"has a key layout LoRA Deck does not recognise (first keys: {sample})",
                            "If it is a LoRA from a trainer we do not know yet, please report it with these keys.")
    if converted.total == 0:
        raise LoraFileError(path, "contains no complete LoRA module (no down/up pair)", "Re-export the file.")
    return converted
