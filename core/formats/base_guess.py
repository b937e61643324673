"""Which base model a LoRA file was trained for, judged from its keys and shapes.

Only a hint for error messages ("this looks like an SDXL LoRA"); the decision whether a file
fits is made by matching every module against the real pipeline. Rules are tables, checked in
order; the first that applies wins. Each family's own markers and widths are in its row
(``Family.lora_markers``, ``encoder_markers``, ``lora_widths``).
"""

from __future__ import annotations

from ..families import FAMILIES
from .patch import ConvertedLora

# Markers no one family owns. The order of all markers: each family's denoiser markers (registration order), the
# joint-attention and T5 ones, each family's text-encoder markers, then the UNet / transformer fallbacks (an SD 3
# file also has a text_encoder_2 part, as SDXL files do; an SDXL kohya file has UNet keys, as SD 1.x files do).
JOINT = (
    ("add_q_proj", "SD 3 or Flux (joint attention)"),
    ("add_k_proj", "SD 3 or Flux (joint attention)"),
    ("lora_te3_", "SD 3 or Flux (a T5 text encoder)"),
)
FALLBACK = (
    ("input_blocks", "SD 1.x, 2.x or SDXL (a UNet)"),
    ("down_blocks", "SD 1.x, 2.x or SDXL (a UNet)"),
    ("transformer_blocks", "a transformer model (SD 3, Flux, ...)"),
)
KEY_MARKERS = (*(m for f in FAMILIES.values() for m in f.lora_markers), *JOINT,
               *(m for f in FAMILIES.values() for m in f.encoder_markers), *FALLBACK)
WIDTH_FIRST = ("SD 1.x, 2.x or SDXL (a UNet)",)  # a more precise answer may come from the module widths


def _widths(kind: str, generic: dict[int, str]) -> dict[int, str]:
    table = dict(generic)
    for family in FAMILIES.values():
        table.update(family.lora_widths.get(kind, {}))
    return table


# Input width of a module -> base model: the UNet's cross-attention (attn2.to_k/to_v reads the
# text embeddings) and CLIP's hidden size (q_proj, fc1 of the text encoder).
CROSS_ATTENTION_WIDTH = _widths("cross-attention width", {4096: "a T5-conditioned model"})
TEXT_ENCODER_WIDTH = _widths("text-encoder width", {})
_CROSS_ATTENTION_NAMES = ("attn2.to_k", "attn2_to_k", "attn2.to_v", "attn2_to_v")
_TEXT_ENCODER_NAMES = ("q_proj", "fc1")


def _by_keys(keys) -> tuple[str, str]:
    """(base, evidence) from the first marker found, or ("", "")."""
    for marker, base in KEY_MARKERS:
        hit = next((k for k in keys if marker in k), None)
        if hit is not None:
            shown = hit if len(hit) <= 70 else hit[:67] + "..."
            return base, f"{base} (key {shown!r})"
    return "", ""


def _by_width(converted: ConvertedLora, names, table: dict[int, str], what: str) -> str:
    for patches in converted.patches.values():
        for name, patch in patches.items():
            if name.endswith(names) and patch.in_features in table:
                return f"{table[patch.in_features]} ({what} {patch.in_features} in {name!r})"
    return ""


def guess_made_for(keys, converted: ConvertedLora) -> str:
    """'SDXL (key 'lora_te2_...')', 'SD 1.x (cross-attention width 768 in ...)' or '' when unsure."""
    base, by_keys = _by_keys(keys)
    if base and base not in WIDTH_FIRST:
        return by_keys
    return (_by_width(converted, _CROSS_ATTENTION_NAMES, CROSS_ATTENTION_WIDTH, "cross-attention width")
            or by_keys or _by_width(converted, _TEXT_ENCODER_NAMES, TEXT_ENCODER_WIDTH, "text-encoder width"))
