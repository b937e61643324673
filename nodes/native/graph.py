"""Reading a queued API prompt (ComfyUI's hidden PROMPT) around one node: its ancestors, a stable signature of
them, the sampler that made an image and the texts, checkpoint and LoRA Loaders behind it. Pure: dicts in, data
out (links are ``[node id, output slot]``)."""

from __future__ import annotations

import json
from collections import deque

SAMPLER_INPUTS = ("steps", "cfg", "sampler_name")  # KSampler, KSamplerAdvanced and look-alikes
SEED_INPUTS = ("seed", "noise_seed")
TEXT_NODES = {"CLIPTextEncode": "text", "CLIPTextEncodeSDXL": "text_g", "CLIPTextEncodeSD3": "clip_l",
              "CLIPTextEncodeFlux": "clip_l"}
CHECKPOINT_NODES = {"CheckpointLoaderSimple": "ckpt_name", "CheckpointLoader": "ckpt_name",
                    "UNETLoader": "unet_name", "ImageOnlyCheckpointLoader": "ckpt_name"}


def _node(prompt, node_id) -> dict:
    node = prompt.get(str(node_id)) if isinstance(prompt, dict) else None
    return node if isinstance(node, dict) else {}


def _inputs(node: dict) -> dict:
    inputs = node.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))


def ancestors(prompt, node_id, through: tuple[str, ...] | None = None) -> list[str]:
    """Every node ``node_id`` depends on, nearest first (breadth-first); ``through``: follow only these inputs."""
    seen, order, queue = {str(node_id)}, [], deque([str(node_id)])
    while queue:
        for key, value in _inputs(_node(prompt, queue.popleft())).items():
            if (through is None or key in through) and is_link(value) and str(value[0]) not in seen:
                seen.add(str(value[0]))
                order.append(str(value[0]))
                queue.append(str(value[0]))
    return order


def signature(prompt, node_id) -> str:
    """The node and everything it depends on (class types and inputs) as one canonical text: what ComfyUI's cache
    keys a node's outputs by, so a cached node and the node that made its outputs have the same signature."""
    ids = [str(node_id), *ancestors(prompt, node_id)]
    part = {i: {"class_type": _node(prompt, i).get("class_type"), "inputs": _inputs(_node(prompt, i))} for i in ids}
    return json.dumps(part, sort_keys=True, default=str)


def sampler(prompt, node_id) -> str | None:
    """The nearest ancestor that samples (steps, cfg and sampler_name among its inputs)."""
    for candidate in ancestors(prompt, node_id):
        if all(k in _inputs(_node(prompt, candidate)) for k in SAMPLER_INPUTS):
            return candidate
    return None


def literal(prompt, node_id, key: str):
    """An input's value when it is written in the prompt (not linked), else None."""
    value = _inputs(_node(prompt, node_id)).get(key)
    return None if is_link(value) else value


def text_behind(prompt, node_id, key: str) -> str:
    """The prompt text of the conditioning linked to ``key`` (a text encoder's literal text), else ''."""
    value = _inputs(_node(prompt, node_id)).get(key)
    if not is_link(value):
        return ""
    for candidate in [str(value[0]), *ancestors(prompt, value[0])]:
        node = _node(prompt, candidate)
        field = TEXT_NODES.get(node.get("class_type"))
        if field is not None:
            text = literal(prompt, candidate, field)
            return text if isinstance(text, str) else ""
    return ""


def along_model(prompt, node_id) -> list[str]:
    """The nodes a sampler's model comes through, nearest first (following model and clip inputs)."""
    return ancestors(prompt, node_id, ("model", "clip"))


def checkpoint_name(prompt, nodes) -> str:
    for candidate in nodes:
        node = _node(prompt, candidate)
        field = CHECKPOINT_NODES.get(node.get("class_type"))
        if field is not None and isinstance(literal(prompt, candidate, field), str):
            return literal(prompt, candidate, field)
    return ""


def class_type(prompt, node_id) -> str:
    return str(_node(prompt, node_id).get("class_type", ""))
