"""Everything the nodes need from their host: ComfyUI when it is there, the headless runner otherwise.

This is the only module that imports ComfyUI (``folder_paths``, ``comfy.*``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable

from ..core.errors import PipelineLoadError
from ..core.files import SAFE_SUFFIXES
from ..core.names import Located, inside, locate, resolve_lora
from ..core.pipelines import BUILTIN_NAMES

log = logging.getLogger(__name__)

try:  # inside ComfyUI
    import folder_paths  # type: ignore[import-not-found]
except ImportError:
    folder_paths = None

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_LORAS = os.path.join(PACK_DIR, "demo", "models", "loras")
IN_COMFYUI = folder_paths is not None


class HeadlessPaths:
    """ComfyUI's folder layout under one models directory (``loras/``, ``diffusers/``)."""

    def __init__(self, models_dir: str | None = None, output_dir: str | None = None):
        self.models_dir = os.path.abspath(models_dir or os.environ.get("LORADECK_MODELS_DIR", "models"))
        self.output_dir = os.path.abspath(output_dir or "output")

    def roots(self, kind: str) -> list[str]:
        roots = [os.path.join(self.models_dir, kind)]
        if kind == "loras":
            roots.append(DEMO_LORAS)
        return [r for r in roots if os.path.isdir(r)]


class ComfyPaths:
    output_dir = None

    def roots(self, kind: str) -> list[str]:
        return [r for r in folder_paths.get_folder_paths(kind) if os.path.isdir(r)]


_paths: HeadlessPaths | ComfyPaths = ComfyPaths() if IN_COMFYUI else HeadlessPaths()
if IN_COMFYUI and DEMO_LORAS not in folder_paths.get_folder_paths("loras"):
    # The shipped demo LoRAs make the example workflows run out of the box.
    folder_paths.add_model_folder_path("loras", DEMO_LORAS, is_default=False)


def output_dir() -> str:
    """Where output nodes write: ComfyUI's output folder, or the headless runner's --output-dir."""
    return folder_paths.get_output_directory() if IN_COMFYUI else _paths.output_dir


def use_headless(models_dir: str | None, output: str | None = None) -> None:
    """Point the nodes at a models directory (the headless runner and tests call this)."""
    global _paths
    _paths = HeadlessPaths(models_dir, output)


def roots(kind: str) -> list[str]:
    return _paths.roots(kind)


def _walk_files(root: str, suffixes: tuple[str, ...]) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(suffixes):
                found.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return found


def lora_names() -> list[str]:
    names: list[str] = []
    for root in roots("loras"):
        names.extend(n for n in _walk_files(root, SAFE_SUFFIXES) if n not in names)
    return sorted(names, key=str.lower)


def diffusers_models() -> list[str]:
    """Folders under ``models/diffusers`` that hold a ``model_index.json`` (two levels deep), single-file
    checkpoints under ``models/checkpoints``, then the built-ins."""
    folders = sorted({os.path.relpath(f, r).replace(os.sep, "/") for r, f in _diffusers_folders()}, key=str.lower)
    files = sorted({n for root in roots("checkpoints") for n in _walk_files(root, SAFE_SUFFIXES)}, key=str.lower)
    return folders + files + list(BUILTIN_NAMES)


def diffusers_folders() -> tuple[str, ...]:
    """Full paths of the local diffusers folders (single-file checkpoints take their configs from these)."""
    return tuple(folder for _, folder in _diffusers_folders())


def _diffusers_folders() -> list[tuple[str, str]]:
    found = []
    for root in roots("diffusers"):
        for folder, dirs, files in os.walk(root, followlinks=True):
            depth = os.path.relpath(folder, root).count(os.sep)
            if "model_index.json" in files and folder != root:
                found.append((root, folder))
                dirs[:] = []
            elif depth >= 1:
                dirs[:] = []
            dirs.sort()
    return found


def lora_path(name: str, hashes: Iterable[str] = ()) -> str:
    """The file for a workflow's LoRA name; ``hashes`` (recorded with the node) find it under another name."""
    return resolve_lora(name, roots("loras"), lora_names(), hashes=hashes)


def locate_lora(name: str, hashes: Iterable[str] = ()) -> Located:
    """Like ``lora_path``, also saying which name it is listed under here and which rule found it."""
    return locate(name, roots("loras"), lora_names(), hashes)


def model_path(name: str) -> str:
    if name in BUILTIN_NAMES:
        return name
    if name.lower().endswith(SAFE_SUFFIXES):
        for root in roots("checkpoints"):
            path = inside(root, name)
            if path:
                return path
    for root in roots("diffusers"):
        index = inside(root, f"{name}/model_index.json")
        if index:
            return os.path.dirname(index)
    raise PipelineLoadError(f"model {name!r} was not found under models/diffusers or models/checkpoints; "
                            "put a diffusers folder (with model_index.json) there or pick another model")


def progress_reporter(total: int) -> Callable[[int, int], None]:
    """A per-step callback: ComfyUI's progress bar (which also raises on Cancel) or a terminal bar."""
    if IN_COMFYUI:
        import comfy.model_management  # type: ignore[import-not-found]
        import comfy.utils  # type: ignore[import-not-found]

        bar = comfy.utils.ProgressBar(total)

        def report(step: int, of: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            bar.update_absolute(step, of)

        return report
    return _terminal_bar


def _terminal_bar(step: int, total: int) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    done = int(width * step / max(total, 1))
    sys.stderr.write(f"\r  [{'#' * done}{'.' * (width - done)}] {step}/{total}")
    if step >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _attach_to_server() -> None:
    """Inside ComfyUI: the panel's read-only routes and its live websocket event (see nodes/routes.py)."""
    try:
        from server import PromptServer  # type: ignore[import-not-found]
    except ImportError:
        log.warning("loradeck: ComfyUI's server module is missing; the LoRA Deck panel stays empty")
        return
    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        log.warning("loradeck: no PromptServer yet; the LoRA Deck panel stays empty")
        return
    from . import routes

    routes.attach(instance)


if IN_COMFYUI:
    _attach_to_server()
