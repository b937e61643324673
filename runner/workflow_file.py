"""Reading a saved workflow: API JSON, UI JSON, or a PNG that carries either."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from PIL import Image

from .errors import WorkflowError
from .ui_to_api import ui_to_api

MAX_WORKFLOW_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Workflow:
    prompt: dict  # API format: node id -> {"class_type", "inputs", "_meta"}
    ui: dict | None  # the UI graph when known (written back into output PNGs)
    source: str


def is_api(data) -> bool:
    return isinstance(data, dict) and bool(data) and all(
        isinstance(v, dict) and "class_type" in v for v in data.values())


def is_ui(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def from_data(data, source: str, ui: dict | None = None) -> Workflow:
    if is_api(data):
        return Workflow(data, ui, source)
    if is_ui(data):
        return Workflow(ui_to_api(data), data, source)
    raise WorkflowError(f"{source}: neither an API-format nor a UI-format ComfyUI workflow "
                        "(expected node ids with class_type, or a 'nodes' list)")


def _png_chunks(path: str) -> dict:
    try:
        with Image.open(path) as img:
            return dict(getattr(img, "text", {}) or img.info)
    except OSError as exc:
        raise WorkflowError(f"{path}: not a readable PNG ({exc})") from None


def _json(text, source: str):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise WorkflowError(f"{source}: not valid JSON ({exc})") from None


def load(path: str) -> Workflow:
    """Read a workflow from a .json file or a PNG with ComfyUI's ``prompt``/``workflow`` text chunks."""
    if not os.path.isfile(path):
        raise WorkflowError(f"{path}: file not found")
    if os.path.getsize(path) > MAX_WORKFLOW_BYTES:
        raise WorkflowError(f"{path}: larger than {MAX_WORKFLOW_BYTES} bytes; not a workflow")
    if path.lower().endswith(".png"):
        chunks = _png_chunks(path)
        ui = _json(chunks["workflow"], f"{path} (workflow chunk)") if "workflow" in chunks else None
        if "prompt" in chunks:  # the exact graph that ran, seeds already resolved
            return from_data(_json(chunks["prompt"], f"{path} (prompt chunk)"), path, ui)
        if ui is not None:
            return from_data(ui, path)
        raise WorkflowError(f"{path}: this PNG carries no ComfyUI workflow (no 'prompt' or 'workflow' chunk)")
    with open(path, encoding="utf-8") as f:
        return from_data(_json(f.read(), path), path)
