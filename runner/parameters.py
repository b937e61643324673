"""A1111-style ``parameters`` text for saved images, so civitai and A1111 readers credit the LoRAs.

An IMAGE tensor carries no metadata, so the headless SaveImage looks upstream instead: the node
feeding its ``images`` input is a Generate node whose evaluated inputs (prompt, seed, ... and the
pipeline handle with its immutable stack) the runner kept. Example::

    a lighthouse
    Negative prompt: blurry
    Steps: 20, Seed: 42, CFG scale: 7.0, Size: 128x128, Model: tiny-sd (built-in), Lora hashes: "style: 0d1f..."
"""

from __future__ import annotations

import json

from ..core.hashing import autov2
from ..core.schedulers import DEFAULT
from ..nodes.common import node_id

GENERATE = node_id("Generate")


def quote(text: str) -> str:
    """A1111's rule: values holding ``,``, ``:`` or a newline are written as a JSON string."""
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def alias(name: str) -> str:
    """An adapter name as it may appear inside ``Lora hashes`` (A1111 strips ``:`` and ``,``)."""
    return name.replace(":", "").replace(",", "").strip() or "lora"


def _weights(spec) -> str:
    return " ".join(f"{k}={v:g}" for k, v in spec.weights) + (f" fused={spec.fuse_scale:g}" if spec.fused else "")


def lora_fields(stack) -> list[tuple[str, str]]:
    """``Lora hashes`` (autov2 per enabled adapter) and LoRA Deck's own adapter list with weights."""
    used = [a for a in stack.adapters if a.enabled]
    if not used:
        return []
    hashes = ", ".join(f"{alias(a.name)}: {autov2(a.sha256)}" for a in used)
    weights = ", ".join(f"{alias(a.name)}: {_weights(a)}" for a in used)
    return [("Lora hashes", json.dumps(hashes)), ("LoRA Deck", json.dumps(weights))]


def _size(inputs: dict, owner) -> str:
    """The output size: width x height, or with an image its size on the model's grid (see core/sources.py)."""
    image = inputs.get("image")
    if image is None:
        return f"{inputs['width']}x{inputs['height']}"
    grid = owner.family.pixel_multiple(owner.pipe)
    return f"{image.shape[-2] // grid * grid}x{image.shape[-3] // grid * grid}"


def a1111_text(inputs: dict) -> str:
    """The parameters text for one Generate node's evaluated inputs."""
    handle = inputs["pipeline"]
    model = handle.owner.label.rsplit(" [", 1)[0]
    scheduler = inputs.get("scheduler", DEFAULT)
    fields = [("Steps", str(inputs["steps"])), *([("Sampler", quote(scheduler))] if scheduler != DEFAULT else []),
              ("Seed", str(inputs["seed"])), ("CFG scale", f"{inputs['cfg']:g}"), ("Size", _size(inputs, handle.owner)),
              ("Model", quote(model)),
              *([("Denoising strength", f"{inputs.get('denoise', 1.0):g}")] if inputs.get("image") is not None else []),
              *lora_fields(handle.stack)]
    lines = [str(inputs["prompt"])]
    if inputs.get("negative_prompt"):
        lines.append(f"Negative prompt: {inputs['negative_prompt']}")
    lines.append(", ".join(f"{key}: {value}" for key, value in fields))
    return "\n".join(lines)


def for_save_node(prompt: dict, evaluated: dict, save_id: str | None) -> str | None:
    """The text for the SaveImage node ``save_id``, or None when its images do not come from a Generate node."""
    link = prompt.get(str(save_id), {}).get("inputs", {}).get("images")
    if not (isinstance(link, list) and len(link) == 2):
        return None
    source = str(link[0])
    if prompt.get(source, {}).get("class_type") != GENERATE or source not in evaluated:
        return None
    return a1111_text(evaluated[source])
