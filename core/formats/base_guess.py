"""Which base model a LoRA file was trained for, judged from its keys and shapes.

Only a hint for error messages ("this looks like an SDXL LoRA"); the decision whether a file
fits is made by matching every module against the real pipeline. Rules are tables, checked in
order; the first that applies wins.
"""

from __future__ import annotations

from .patch import ConvertedLora

# A key containing the marker -> base model, with the evidence shown to the user. Order matters: the markers
# of one denoiser come before text-encoder ones (an SD 3 file also has a text_encoder_2 part, as SDXL files do).
KEY_MARKERS = (
    ("single_transformer_blocks", "Flux"),
    ("double_blocks", "Flux"),
    ("single_blocks", "Flux"),
    ("joint_blocks", "SD 3"),
    ("transformer_layers", "aMUSEd"),
    ("context_block", "SD 3"),
    ("add_q_proj", "SD 3 or Flux (joint attention)"),
    ("add_k_proj", "SD 3 or Flux (joint attention)"),
    ("lora_te3_", "SD 3 or Flux (a T5 text encoder)"),
    ("text_encoder_3.", "SD 3"),
    ("lora_te2_", "SDXL"),
    ("text_encoder_2.", "SDXL"),
    ("input_blocks", "SD 1.x, 2.x or SDXL (a UNet)"),
    ("down_blocks", "SD 1.x, 2.x or SDXL (a UNet)"),
    ("transformer_blocks", "a transformer model (SD 3, Flux, ...)"),
)
WIDTH_FIRST = ("SD 1.x, 2.x or SDXL (a UNet)",)  # a more precise answer may come from the module widths
# Input width of a module -> base model: the UNet's cross-attention (attn2.to_k/to_v reads the
# text embeddings) and CLIP's hidden size (q_proj, fc1 of the text encoder).
CROSS_ATTENTION_WIDTH = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL", 4096: "a T5-conditioned model"}
TEXT_ENCODER_WIDTH = {768: "SD 1.x", 1024: "SD 2.x", 1280: "SDXL"}
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
