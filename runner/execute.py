"""Executing an API-format prompt headless, the way ComfyUI does: output nodes pull their inputs."""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field

from ..core.errors import LoraDeckError
from .errors import WorkflowError
from .registry import CLASSES, input_specs, is_widget

log = logging.getLogger(__name__)

CASTS = {"INT": int, "FLOAT": float, "BOOLEAN": bool, "STRING": str}


@dataclass
class RunContext:
    output_dir: str
    prompt: dict
    extra_pnginfo: dict
    saved: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, dict] = field(default_factory=dict)  # node id -> evaluated inputs (image metadata reads it)
    input_dir: str = "input"  # where LoadImage reads (then the examples' shipped input folder)


def _label(node_id: str, node: dict) -> str:
    title = node.get("_meta", {}).get("title")
    return f"node {node_id} ({node['class_type']}{', ' + repr(title) if title else ''})"


def _check_value(where: str, name: str, spec: tuple, value, has_validator: bool):
    kind = spec[0]
    if isinstance(kind, (list, tuple)):
        if value not in kind and not has_validator:
            shown = ", ".join(map(repr, list(kind)[:8]))
            raise WorkflowError(f"{where}: {name} = {value!r} is not one of the available choices ({shown})")
        return value
    cast = CASTS.get(kind)
    if cast is None:
        return value
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise WorkflowError(f"{where}: {name} = {value!r} is not a valid {kind}") from None


class Executor:
    def __init__(self, prompt: dict, context: RunContext):
        self.prompt = prompt
        self.context = context
        self.outputs: dict[str, tuple] = {}
        self._validate()

    def _validate(self) -> None:
        unknown = sorted({f"{n.get('class_type')} (node {i})" for i, n in self.prompt.items()
                          if n.get("class_type") not in CLASSES})
        if unknown:
            raise WorkflowError("these nodes cannot run headless: " + ", ".join(unknown) +
                                ". The runner executes LoRA Deck nodes plus LoadImage, SaveImage and PreviewImage.")

    def output_nodes(self) -> list[str]:
        ids = [i for i, n in self.prompt.items() if getattr(CLASSES[n["class_type"]], "OUTPUT_NODE", False)]
        return sorted(ids, key=lambda i: (len(i), i))

    def run(self, order: list[str] | None = None) -> None:
        targets = order or self.output_nodes()
        if not targets:
            raise WorkflowError("the workflow has no output node (SaveImage or PreviewImage); nothing would run")
        for node_id in targets:
            self.evaluate(node_id, ())

    def _inputs(self, node_id: str, node: dict, cls, trail: tuple) -> dict:
        where = _label(node_id, node)
        specs = input_specs(cls)
        required = cls.INPUT_TYPES().get("required", {})
        validated = validated_inputs(cls)
        kwargs = {}
        for name, value in node.get("inputs", {}).items():
            if name not in specs:
                continue  # ComfyUI ignores inputs a node no longer declares
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                kwargs[name] = self.evaluate(value[0], (*trail, node_id))[int(value[1])]
            else:
                kwargs[name] = _check_value(where, name, specs[name], value, name in validated) \
                    if is_widget(specs[name]) else value
        missing = [n for n in required if n not in kwargs]
        if missing:
            raise WorkflowError(f"{where}: required input(s) {', '.join(missing)} missing or not connected "
                                "(a muted node upstream?)")
        return kwargs

    def _hidden(self, cls, node_id: str) -> dict:
        hidden = cls.INPUT_TYPES().get("hidden", {})
        values = {"PROMPT": self.context.prompt, "EXTRA_PNGINFO": self.context.extra_pnginfo, "UNIQUE_ID": node_id}
        return {name: values[kind] for name, kind in hidden.items() if kind in values}

    def evaluate(self, node_id: str, trail: tuple) -> tuple:
        if node_id in self.outputs:
            return self.outputs[node_id]
        if node_id in trail:
            raise WorkflowError(f"the workflow has a cycle through node {node_id}")
        node = self.prompt.get(node_id)
        if node is None:
            raise WorkflowError(f"node {trail[-1] if trail else '?'} links to node {node_id}, which does not exist")
        cls = CLASSES[node["class_type"]]
        kwargs = {**self._inputs(node_id, node, cls, trail), **self._hidden(cls, node_id)}
        self.context.inputs[node_id] = kwargs
        where = _label(node_id, node)
        if hasattr(cls, "VALIDATE_INPUTS"):
            names = validated_inputs(cls)
            verdict = cls.VALIDATE_INPUTS(**{k: v for k, v in kwargs.items() if k in names and not _is_link(node, k)})
            if verdict is not True:
                raise WorkflowError(f"{where}: {verdict}")
        instance = cls(self.context) if getattr(cls, "HEADLESS_CONTEXT", False) else cls()
        started = time.perf_counter()
        log.info("running %s", where)
        try:
            result = getattr(instance, cls.FUNCTION)(**kwargs)
        except LoraDeckError as exc:
            raise WorkflowError(f"{where}: {exc}") from exc
        self.context.timings[node_id] = time.perf_counter() - started
        if isinstance(result, dict):
            result = result.get("result", ())
        self.outputs[node_id] = tuple(result or ())
        return self.outputs[node_id]


def validated_inputs(cls) -> set[str]:
    """Inputs a node's VALIDATE_INPUTS checks itself (ComfyUI then skips its list check for them)."""
    if not hasattr(cls, "VALIDATE_INPUTS"):
        return set()
    return set(inspect.signature(cls.VALIDATE_INPUTS).parameters)


def _is_link(node: dict, name: str) -> bool:
    value = node.get("inputs", {}).get(name)
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
