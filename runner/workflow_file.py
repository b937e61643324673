"""Reading a saved workflow: API JSON, UI JSON, or a PNG that carries either.

Anything else (binary data, text that is not JSON, JSON that is not a workflow) is a WorkflowError
with one line saying what the file is not; problems inside a UI graph travel with the Workflow and
are reported together with the runner's validation.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

from .errors import WorkflowError
from .ui_to_api import convert

MAX_WORKFLOW_BYTES = 64 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Workflow:
    prompt: dict  # API format: node id -> {"class_type", "inputs", "_meta"}
    ui: dict | None  # the UI graph when known (written back into output PNGs)
    source: str
    problems: tuple[str, ...] = ()  # malformed nodes/links of the UI graph, reported before anything runs


def is_ui(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def is_api(data) -> bool:
    """Node id -> node objects; a malformed node among them is reported by the validation, not here."""
    return isinstance(data, dict) and not is_ui(data) and any(
        isinstance(v, dict) and "class_type" in v for v in data.values())


def from_data(data, source: str, ui: dict | None = None) -> Workflow:
    if is_api(data):
        return Workflow(data, ui, source)
    if is_ui(data):
        prompt, problems = convert(data)
        return Workflow(prompt, data, source, tuple(problems))
    raise WorkflowError(f"{source}: neither an API-format nor a UI-format ComfyUI workflow "
                        "(expected node ids with class_type, or a 'nodes' list)")


def _png_chunks(content: bytes, path: str) -> dict:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(content)) as img:
            return dict(getattr(img, "text", {}) or img.info)
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for a damaged file
        raise WorkflowError(f"{path}: not a readable PNG ({exc})") from None


def _json(text, source: str):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError, RecursionError) as exc:
        raise WorkflowError(f"{source}: not valid JSON ({exc})") from None


def _from_png(content: bytes, path: str) -> Workflow:
    chunks = _png_chunks(content, path)
    ui = _json(chunks["workflow"], f"{path} (workflow chunk)") if "workflow" in chunks else None
    if "prompt" in chunks:  # the exact graph that ran, seeds already resolved
        return from_data(_json(chunks["prompt"], f"{path} (prompt chunk)"), path, ui if is_ui(ui) else None)
    if ui is not None:
        return from_data(ui, path)
    raise WorkflowError(f"{path}: this PNG carries no ComfyUI workflow (no 'prompt' or 'workflow' chunk)")


def load(path: str) -> Workflow:
    """Read a workflow from a .json file or a PNG with ComfyUI's ``prompt``/``workflow`` text chunks."""
    if not os.path.isfile(path):
        raise WorkflowError(f"{path}: file not found")
    if os.path.getsize(path) > MAX_WORKFLOW_BYTES:
        raise WorkflowError(f"{path}: larger than {MAX_WORKFLOW_BYTES} bytes; not a workflow")
    with open(path, "rb") as f:
        content = f.read()
    if content.startswith(PNG_SIGNATURE) or path.lower().endswith(".png"):
        return _from_png(content, path)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WorkflowError(f"{path}: not a workflow (neither UTF-8 JSON text nor a PNG)") from None
    return from_data(_json(text, path), path)
