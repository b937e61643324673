"""A1111-style ``parameters`` text for the headless SaveImage (the text itself: core/infotext.py).

Generate and LoRA Grid record the text of the images they return (``runtime.image_info``), which the
savers find by the IMAGE tensor itself. For images that reach SaveImage otherwise, the runner looks
upstream: the node feeding ``images`` is a Generate node whose evaluated inputs (prompt, seed, ... and the
pipeline handle with its immutable stack) it kept. Example::

    a lighthouse
    Negative prompt: blurry
    Steps: 20, Sampler: DDIM, Seed: 42, CFG scale: 7, Size: 128x128, Model: tiny-sd (built-in), Lora hashes: ...
"""

from __future__ import annotations

from ..core.generation.infotext import alias, lora_fields, parameters, quote
from ..core.models.schedulers import DEFAULT
from ..core.stacks.specs import GenerateParams
from ..nodes.common import node_id
from .links import is_link

__all__ = ["a1111_text", "alias", "for_save_node", "lora_fields", "quote"]

GENERATE = node_id("Generate")


def _size(inputs: dict, owner) -> tuple[int, int]:
    """The output size: width x height, or with an image its size on the model's grid (see core/sources.py)."""
    image = inputs.get("image")
    if image is None:
        return int(inputs["width"]), int(inputs["height"])
    grid = owner.family.pixel_multiple(owner.pipe)
    return image.shape[-2] // grid * grid, image.shape[-3] // grid * grid


def a1111_text(inputs: dict) -> str:
    """The parameters text for one Generate node's evaluated inputs."""
    handle = inputs["pipeline"]
    denoise = inputs.get("denoise", 1.0) if inputs.get("image") is not None else 1.0
    params = GenerateParams(str(inputs["prompt"]), inputs.get("negative_prompt") or "", inputs["seed"],
                            inputs["steps"], inputs["cfg"], inputs["width"], inputs["height"],
                            inputs.get("batch_size", 1), inputs.get("scheduler", DEFAULT), denoise)
    return parameters(params.prompt, params.negative_prompt, params, handle.stack, handle.owner,
                      _size(inputs, handle.owner))


def for_save_node(prompt: dict, evaluated: dict, save_id: str | None) -> str | None:
    """The text for the SaveImage node ``save_id``, or None when its images do not come from a Generate node."""
    link = prompt.get(str(save_id), {}).get("inputs", {}).get("images")
    if not is_link(link):
        return None
    source = str(link[0])
    if prompt.get(source, {}).get("class_type") != GENERATE or source not in evaluated:
        return None
    return a1111_text(evaluated[source])
