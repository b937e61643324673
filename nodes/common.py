"""Shared input definitions and helpers for the node classes (no ComfyUI imports here)."""

from __future__ import annotations

import os

from ..core.stacks.specs import MAX_STRENGTH

CATEGORY = "LoRA Deck"
PIPELINE = "LORADECK_PIPELINE"
LORA_STACK = "LORA_STACK"
NONE_CHOICE = "None"


def node_id(name: str) -> str:
    """Namespaced, frozen node ID: ``LoadLoRA`` -> ``LoadLoRA|LoRADeck``."""
    return f"{name}|LoRADeck"


def pipeline_input(tooltip: str = "The pipeline and its LoRA stack so far (from Load Diffusers Pipeline).") -> tuple:
    return (PIPELINE, {"tooltip": tooltip})


def strength_input(tooltip: str, default: float = 1.0) -> tuple:
    return ("FLOAT", {"default": default, "min": -MAX_STRENGTH, "max": MAX_STRENGTH, "step": 0.01,
                      "tooltip": tooltip})


PROMPT_TIP = ("What to generate. <lora:name:weight> or <lora:name:model:clip> adds a LoRA from your loras folder "
              "for this run (name as listed, .safetensors optional, or its hash); the tag is taken out of the text.")
MAX_SEED = 0xFFFFFFFFFFFFFFFF


def sampling_inputs(seed: str, steps: str, cfg: str, width: str, height: str) -> dict:
    """prompt, negative_prompt, seed, steps, cfg, width, height: the inputs Generate and LoRA Grid share (in this
    order, a frozen widget order), with each node's own tooltips."""
    return {
        "prompt": ("STRING", {"multiline": True, "default": "a photo of a cat", "tooltip": PROMPT_TIP}),
        "negative_prompt": ("STRING", {"multiline": True, "default": "",
                                       "tooltip": "What to steer away from (used when cfg > 1)."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True, "tooltip": seed}),
        "steps": ("INT", {"default": 20, "min": 1, "max": 1000, "tooltip": steps}),
        "cfg": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01, "tooltip": cfg}),
        "width": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8, "tooltip": width}),
        "height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8, "tooltip": height}),
    }


STRENGTH_MODEL_TIP = "How strongly the LoRA changes the denoiser (UNet/transformer). 0 = off, 1 = as trained."
STRENGTH_CLIP_TIP = "How strongly the LoRA changes the text encoder(s). 0 = off, 1 = as trained."


def validate_lora_name(name: str, hashes=()):
    """True, or a plain-words message (ComfyUI shows it at queue time instead of 'value not in list')."""
    from ..core.errors import LoraFileError
    from . import host

    try:
        host.locate_lora(name, hashes)
    except LoraFileError as exc:
        return str(exc)
    return True


def has_preview(path: str) -> bool:
    """Whether the LoRA at ``path`` (the path it was found under) has a preview picture (beside it or in its
    header)."""
    from ..core.files.previews import find_preview

    return find_preview(path) is not None


TRIGGER_WORDS_TIP = ("The trigger words of the LoRA file(s) from their metadata, comma-separated (empty when "
                     "the files name none): wire them into a prompt.")


def file_stamp(path: str) -> str:
    """Changes when the file changes, so ComfyUI re-runs a node whose file was replaced."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"
