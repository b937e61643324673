"""The node classes the headless runner can execute, and their inputs and widget layout."""

from __future__ import annotations

import inspect

from ..nodes import NODE_CLASS_MAPPINGS
from .image_nodes import PreviewImage, SaveImage
from .load_image import LoadImage
from .video_nodes import CreateVideo, SaveAnimatedWEBP, SaveVideo

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "LORADECK_LORA_LIST"}  # the last: LoRA List's rows
CONTROL = object()  # the frontend's extra control_after_generate value ("fixed", "randomize", ...)

CLASSES = {**NODE_CLASS_MAPPINGS, "LoadImage": LoadImage, "SaveImage": SaveImage, "PreviewImage": PreviewImage,
           "SaveAnimatedWEBP": SaveAnimatedWEBP, "CreateVideo": CreateVideo, "SaveVideo": SaveVideo}
VIRTUAL = {"Reroute", "Note", "MarkdownNote", "PrimitiveNode"}
RUNS_HERE = ("the runner executes LoRA Deck nodes plus LoadImage, SaveImage, PreviewImage, SaveAnimatedWEBP, "
             "CreateVideo and SaveVideo; run it in ComfyUI instead")


def input_specs(cls) -> dict[str, tuple]:
    types = cls.INPUT_TYPES()
    return {**types.get("required", {}), **types.get("optional", {})}


def is_widget(spec: tuple) -> bool:
    """A widget in the UI format (a value in ``widgets_values``); ``forceInput`` makes a socket instead."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return (isinstance(spec[0], (list, tuple)) or spec[0] in WIDGET_TYPES) and not options.get("forceInput")


def type_name(spec: tuple) -> str:
    """The type an input accepts from a link: its declared type, or COMBO for a list of choices."""
    return "COMBO" if isinstance(spec[0], (list, tuple)) else str(spec[0])


def validated_inputs(cls) -> set[str]:
    """Inputs a node's VALIDATE_INPUTS checks itself (ComfyUI then skips its list check for them)."""
    if not hasattr(cls, "VALIDATE_INPUTS"):
        return set()
    return set(inspect.signature(cls.VALIDATE_INPUTS).parameters) - {"self"}


def widget_names(cls) -> list:
    """Widget input names in ``widgets_values`` order, with CONTROL where the frontend stores one."""
    names: list = []
    for name, spec in input_specs(cls).items():
        if not is_widget(spec):
            continue
        names.append(name)
        options = spec[1] if len(spec) > 1 else {}
        if options.get("control_after_generate") or (spec[0] == "INT" and name in ("seed", "noise_seed")):
            names.append(CONTROL)
    return names
