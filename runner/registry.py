"""The node classes the headless runner can execute, and their widget layout."""

from __future__ import annotations

from ..nodes import NODE_CLASS_MAPPINGS
from .image_nodes import PreviewImage, SaveImage
from .load_image import LoadImage

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "LORADECK_LORA_LIST"}  # the last: LoRA List's rows
CONTROL = object()  # the frontend's extra control_after_generate value ("fixed", "randomize", ...)

CLASSES = {**NODE_CLASS_MAPPINGS, "LoadImage": LoadImage, "SaveImage": SaveImage, "PreviewImage": PreviewImage}
VIRTUAL = {"Reroute", "Note", "MarkdownNote", "PrimitiveNode"}


def input_specs(cls) -> dict[str, tuple]:
    types = cls.INPUT_TYPES()
    return {**types.get("required", {}), **types.get("optional", {})}


def is_widget(spec: tuple) -> bool:
    """A widget in the UI format (a value in ``widgets_values``); ``forceInput`` makes a socket instead."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return (isinstance(spec[0], (list, tuple)) or spec[0] in WIDGET_TYPES) and not options.get("forceInput")


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
