"""Checking a whole API-format prompt before anything runs, as ComfyUI does before it queues one.

Every problem is collected, one line each naming the node (id, type, title) and the input, so a
workflow is fixed in one pass; nothing runs and nothing is written while a problem remains.
Checked: node types, output nodes, required inputs, links (source node, output slot, type, no
cycles), widget values (type, range, choices) and each node's own VALIDATE_INPUTS (LoRA names).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .links import is_link
from .registry import CLASSES, RUNS_HERE, is_widget, type_name, validated_inputs

Hidden = Callable[[type, str], dict]  # (node class, node id) -> its hidden inputs (PROMPT, EXTRA_PNGINFO, ...)


def label(node_id: str, node: dict) -> str:
    """``node 9 (LoadLoRA|LoRADeck, 'Kohya LoRA alone')``: how every message names a node."""
    meta = node.get("_meta") if isinstance(node, dict) else None
    title = meta.get("title") if isinstance(meta, dict) else None
    kind = node.get("class_type") if isinstance(node, dict) else None
    return f"node {node_id} ({kind}{', ' + repr(title) if title else ''})"


@dataclass
class Checked:
    targets: list[str]  # the output nodes to run, in ComfyUI's order
    inputs: dict[str, dict] = field(default_factory=dict)  # node id -> inputs, widget values cast
    problems: list[str] = field(default_factory=list)


def _whole_number(value):
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    return int(value)  # int, or text such as "42" (never through float: seeds go up to 2**64 - 1)


def _finite(value):
    if isinstance(value, bool) or not math.isfinite(number := float(value)):
        raise ValueError
    return number


def _boolean(value):
    if not isinstance(value, bool):
        raise ValueError
    return value


def _text(value):
    if not isinstance(value, (str, int, float)):
        raise ValueError
    return str(value)


CASTS = {"INT": (_whole_number, "a whole number"), "FLOAT": (_finite, "a finite number"),
         "BOOLEAN": (_boolean, "true or false"), "STRING": (_text, "text")}


def widget_value(spec: tuple, value, checked_by_node: bool):
    """(value cast to the widget's type, None) or (value, what is wrong with it)."""
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    if isinstance(kind, (list, tuple)):
        if checked_by_node or value in kind:
            return value, None
        shown = ", ".join(map(repr, list(kind)[:8])) + (", ..." if len(kind) > 8 else "")
        return value, f"not one of the choices ({shown})"
    cast, expected = CASTS.get(kind, (None, ""))
    if cast is None:
        return value, None
    try:
        value = cast(value)
    except (TypeError, ValueError, OverflowError):
        return value, f"not {expected}"
    if options.get("min") is not None and value < options["min"]:
        return value, f"below the minimum {options['min']}"
    if options.get("max") is not None and value > options["max"]:
        return value, f"above the maximum {options['max']}"
    return value, None


def _types_match(given: str, wanted: str) -> bool:
    return "*" in (given, wanted) or given == wanted


class _Validator:
    def __init__(self, prompt: dict, hidden: Hidden, context):
        self.prompt, self.hidden, self.context = prompt, hidden, context
        self.result = Checked([])
        self._types: dict[type, dict] = {}  # INPUT_TYPES read once per class (LoRA lists walk folders)
        self._state: dict[str, str] = {}  # node id -> "visiting" / "done"

    def problem(self, where: str, text: str) -> None:
        self.result.problems.append(f"{where}: {text}")

    def node_types(self) -> None:
        unknown = False
        for node_id, node in self.prompt.items():
            if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
                self.problem(f"node {node_id}", 'not a node (expected {"class_type": ..., "inputs": {...}})')
            elif node["class_type"] not in CLASSES:
                unknown = True
                self.problem(label(node_id, node), "this node type cannot run headless")
            elif not isinstance(node.get("inputs", {}), dict):
                self.problem(label(node_id, node), "'inputs' is not an object of input names")
        if unknown:
            self.result.problems.append(f"({RUNS_HERE})")

    def targets(self, order: list[str] | None) -> list[str]:
        if order:
            missing = [i for i in order if i not in self.prompt]
            for node_id in missing:
                self.problem(f"node {node_id}", "asked to run, but the workflow has no such node")
            return [i for i in order if i not in missing]
        ids = [i for i, n in self.prompt.items() if getattr(self.cls(n), "OUTPUT_NODE", False)]
        if not ids:
            self.result.problems.append("the workflow has no output node (Save Image, Preview Image or Save LoRA "
                                        "Stack); nothing would run")
        return sorted(ids, key=lambda i: (len(i), i))

    @staticmethod
    def cls(node):
        return CLASSES.get(node.get("class_type")) if isinstance(node, dict) else None

    def input_types(self, cls) -> dict:
        if cls not in self._types:
            self._types[cls] = cls.INPUT_TYPES()
        return self._types[cls]

    def visit(self, node_id: str, path: tuple[str, ...]) -> None:
        """Check ``node_id`` and everything upstream of it, each node once."""
        if self._state.get(node_id) == "visiting":
            cycle = " -> ".join((*path[path.index(node_id):], node_id))
            self.problem(label(node_id, self.prompt[node_id]), f"part of a cycle ({cycle}); links must flow one way")
            return
        node = self.prompt.get(node_id)
        cls = self.cls(node)
        if node_id in self._state or cls is None or not isinstance(node.get("inputs", {}), dict):
            return  # checked already, or its type/shape is reported by node_types
        self._state[node_id] = "visiting"
        self.check_node(node_id, node, cls, (*path, node_id))
        self._state[node_id] = "done"

    def check_node(self, node_id: str, node: dict, cls, path: tuple[str, ...]) -> None:
        where, types, given = label(node_id, node), self.input_types(cls), node.get("inputs", {})
        specs, own = {**types.get("required", {}), **types.get("optional", {})}, validated_inputs(cls)
        for name in types.get("required", {}):
            if name not in given:
                self.problem(where, f"{name}: required input is missing or not connected (a muted node upstream?)")
        inputs = {}
        for name, value in given.items():
            if name not in specs:
                continue  # ComfyUI ignores inputs a node no longer declares
            if is_link(value):
                self.check_link(where, name, specs[name], value, path)
                inputs[name] = value
            elif not is_widget(specs[name]):
                self.problem(where, f"{name}: needs a link from a {type_name(specs[name])} output, got {value!r}")
            else:
                inputs[name], wrong = widget_value(specs[name], value, name in own)
                if wrong:
                    self.problem(where, f"{name} = {value!r}: {wrong}")
        self.result.inputs[node_id] = inputs
        self.node_verdict(where, node_id, cls, inputs, own)

    def check_link(self, where: str, name: str, spec: tuple, link: list, path: tuple[str, ...]) -> None:
        source_id, slot = link
        source = self.prompt.get(source_id)
        source_cls = self.cls(source)
        if source is None:
            self.problem(where, f"{name}: linked to node {source_id}, which does not exist")
            return
        if source_cls is None:
            return  # reported by node_types
        outputs = getattr(source_cls, "RETURN_TYPES", ())
        if not 0 <= slot < len(outputs):
            self.problem(where, f"{name}: linked to output {slot} of {label(source_id, source)}, "
                                f"which has {len(outputs)} output(s)")
        elif not _types_match(outputs[slot], type_name(spec)):
            self.problem(where, f"{name}: needs {type_name(spec)}, but output {slot} of "
                                f"{label(source_id, source)} is {outputs[slot]}")
        self.visit(source_id, path)

    def node_verdict(self, where: str, node_id: str, cls, inputs: dict, own: set[str]) -> None:
        """The node's own VALIDATE_INPUTS, called as ComfyUI calls it (on an instance): widget values and hidden
        inputs. The runner's own nodes get the run's context (LoadImage checks the run's input folder)."""
        if not own:
            return
        values = {**{k: v for k, v in inputs.items() if not is_link(v)}, **self.hidden(cls, node_id)}
        node = cls(self.context) if getattr(cls, "HEADLESS_CONTEXT", False) else cls()
        verdict = node.VALIDATE_INPUTS(**{k: v for k, v in values.items() if k in own})
        if verdict is not True:
            for line in str(verdict).splitlines():
                self.problem(where, line)


def validate(prompt: dict, order: list[str] | None, hidden: Hidden, context=None) -> Checked:
    """Every problem of ``prompt`` (and what would run); the nodes checked are the targets and their inputs.
    ``context``: the run's RunContext, for the runner's own nodes (LoadImage, SaveImage, PreviewImage)."""
    validator = _Validator(prompt, hidden, context)
    validator.node_types()
    validator.result.targets = validator.targets(order)
    for node_id in validator.result.targets:
        validator.visit(node_id, ())
    return validator.result


__all__ = ["Checked", "label", "validate", "widget_value"]
