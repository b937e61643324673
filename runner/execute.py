"""Executing an API-format prompt headless, the way ComfyUI does: validate it all, then output nodes pull inputs."""

from __future__ import annotations

import logging
import os
import time

from ..core.errors import LoraDeckError
from .context import RunContext
from .errors import WorkflowError
from .links import is_link
from .registry import CLASSES
from .validate import label, validate

log = logging.getLogger(__name__)

FILE_TYPES = ("output", "temp")  # where a node's ``ui`` file entries ({filename, subfolder, type}) live


def problems_text(problems: list[str]) -> str:
    count = sum(1 for p in problems if not p.startswith("("))
    head = f"the workflow has {count} problem{'s' if count != 1 else ''}; nothing was run:"
    return "\n".join([head, *(f"  {p}" for p in problems)])


class Executor:
    def __init__(self, prompt: dict, context: RunContext):
        self.prompt = prompt
        self.context = context
        self.inputs: dict[str, dict] = {}  # node id -> validated inputs (links and cast widget values)
        self.outputs: dict[str, tuple] = {}

    def run(self, order: list[str] | None = None, known: tuple[str, ...] = ()) -> None:
        """Validate the whole prompt, then run its output nodes. ``known``: problems found reading the file;
        they are reported together with the validation's in one WorkflowError."""
        checked = validate(self.prompt, order, self._hidden, self.context)
        if known or checked.problems:
            raise WorkflowError(problems_text([*known, *checked.problems]))
        self.inputs = checked.inputs
        for node_id in checked.targets:
            self.evaluate(node_id)

    def _hidden(self, cls, node_id: str) -> dict:
        hidden = cls.INPUT_TYPES().get("hidden", {})
        values = {"PROMPT": self.context.prompt, "EXTRA_PNGINFO": self.context.extra_pnginfo, "UNIQUE_ID": node_id}
        return {name: values[kind] for name, kind in hidden.items() if kind in values}

    def evaluate(self, node_id: str) -> tuple:
        if node_id in self.outputs:
            return self.outputs[node_id]
        node = self.prompt[node_id]
        cls = CLASSES[node["class_type"]]
        kwargs = {name: self.evaluate(value[0])[value[1]] if is_link(value) else value
                  for name, value in self.inputs[node_id].items()}
        kwargs.update(self._hidden(cls, node_id))
        self.context.inputs[node_id] = kwargs
        where = label(node_id, node)
        instance = cls(self.context) if getattr(cls, "HEADLESS_CONTEXT", False) else cls()
        started = time.perf_counter()
        log.info("running %s", where)
        try:
            result = getattr(instance, cls.FUNCTION)(**kwargs)
        except LoraDeckError as exc:
            raise WorkflowError(f"{where}: {exc}") from exc
        self.context.timings[node_id] = time.perf_counter() - started
        if isinstance(result, dict):
            self.context.saved.extend(self.written(result.get("ui") or {}))
            result = result.get("result", ())
        self.outputs[node_id] = tuple(result or ())
        return self.outputs[node_id]

    def written(self, ui: dict) -> list[str]:
        """Paths of the files a node reports in its ``ui`` ({filename, subfolder, type}, as ComfyUI's SaveImage)."""
        paths = []
        for entries in ui.values():
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, dict) and entry.get("type") in FILE_TYPES and entry.get("filename"):
                    folder = os.path.join(self.context.folder(entry["type"]), entry.get("subfolder") or "")
                    paths.append(os.path.join(folder, entry["filename"]))
        return paths
