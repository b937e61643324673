"""The runtime: the one owner of LoRA Deck's process-wide state.

It holds the settings (read once), the adapter store (LoRA content and conversions under one byte
budget), the hash index, the loaded pipelines, snapshot listeners and recent snapshots, and the
folders names are looked up in. The ComfyUI host and the headless runner each make one and hand it
on explicitly; tests make their own, so nothing leaks between them. Python-API users who never
ask for one share ``default_runtime()``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from .events import EventBus, RecentSnapshots
from .files.hashing import HashIndex
from .files.store import AdapterStore
from .generation.infotext import ImageInfo
from .models.pipelines import PipelineRegistry
from .settings import Settings


@dataclass(frozen=True)
class Folders:
    """Where names are looked up: model folders by kind (``loras``, ``diffusers``, ``checkpoints``, ...) in
    ComfyUI's layout under ``models_dir``, plus ``extra`` roots per kind; and where outputs go."""

    models_dir: str = "models"
    output_dir: str = "output"
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    def roots(self, kind: str) -> list[str]:
        found = [os.path.join(os.path.abspath(self.models_dir), kind)]
        found += [r for k, paths in self.extra if k == kind for r in paths]
        return [r for r in found if os.path.isdir(r)]

    def output(self) -> str:
        return os.path.abspath(self.output_dir)


class Runtime:
    def __init__(self, settings: Settings | None = None, folders=None):
        self.settings = settings if settings is not None else Settings.from_env()
        self.folders = folders if folders is not None else Folders(self.settings.models_dir)
        self.hashes = HashIndex()
        self.store = AdapterStore(self.settings.store_bytes, self.hashes, self.settings.allow_pickle)
        self.events = EventBus()
        self.recent = RecentSnapshots()
        self.events.subscribe(self.recent.record)
        self.pipelines = PipelineRegistry(self, self.settings.max_pipelines)
        self.image_info = ImageInfo()  # parameters text of the IMAGE tensors made here, for the savers


_default: Runtime | None = None
_default_lock = threading.Lock()


def default_runtime() -> Runtime:
    """The process-wide runtime for callers that do not make their own (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Runtime()
        return _default
