"""The adapter store: LoRA content by SHA-256, and its conversions per pipeline, under one byte budget.

Two kinds of entry share one least-recently-used order and one budget:
- a parsed file (``LoraFile``: tensors + metadata), keyed by its content hash;
- a file converted and fitted to one pipeline (``PreparedAdapter``), keyed by (hash, pipeline id).
Both are caches: an adapter injected into a model holds its own weights, so dropping an entry never
changes what a pipeline computes; it only costs a re-read or re-conversion later. Entries of a
released pipeline are dropped at once (``drop_pipeline``), and so are a file's entries when its adapter is
removed from a pipeline (``forget``): what no stack uses does not wait for the budget to push it out.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import replace

import torch

from .hashing import HashIndex, a1111_hash
from .reading import LoraFile, companion_stamp, read_lora_file, stamp

log = logging.getLogger(__name__)


def tensors_nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


class AdapterStore:
    """Bounded, content-addressed cache of LoRA files and prepared adapters (thread-safe).

    ``reads`` counts files actually read from disk (tests assert a strength change reads none).
    """

    def __init__(self, budget_bytes: int, hashes: HashIndex, allow_pickle: bool = False):
        self.budget_bytes = int(budget_bytes)
        self.hashes = hashes
        self.allow_pickle = allow_pickle
        self.reads = 0
        self._entries: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held now (tensor data of every entry)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    # -- files ---------------------------------------------------------------------------
    def read(self, path: str, ahead=None) -> LoraFile:
        """The parsed file at ``path``: from the store while its stamp is unchanged, else read (and hashed).
        ``ahead(tensors, metadata)`` runs on a file actually read, while its hash is computed
        (``read_lora_file``); an exception it raises is raised here once the file is kept, as if raised after."""
        known = self.hashes.known(stamp(path))
        cached = self._get(("file", known)) if known is not None else None
        if cached is not None and cached.path == path and cached.companion == companion_stamp(path):
            return cached
        if cached is not None and cached.companion is None and companion_stamp(path) is None:
            return replace(cached, path=path)  # the same content at another path: report the path asked for
        failed: list[BaseException] = []

        def guarded(tensors, metadata) -> None:
            try:
                ahead(tensors, metadata)
            except BaseException as exc:  # raised below, once the file is kept as any read file is
                failed.append(exc)

        key, lora = read_lora_file(path, self.allow_pickle, guarded if ahead is not None else None)
        self.hashes.record(key, lora.sha256, a1111_hash(lora.metadata, lora.tensors_sha256))
        with self._lock:
            self.reads += 1
        self._put(("file", lora.sha256), lora, tensors_nbytes(lora.tensors.values()))
        if failed:
            raise failed[0]
        return lora

    def add_file(self, lora: LoraFile) -> LoraFile:
        """Keep an already parsed file (an in-memory adapter) under its content hash."""
        self._put(("file", lora.sha256), lora, tensors_nbytes(lora.tensors.values()))
        return lora

    def sha256(self, path: str) -> str:
        """The content hash of ``path`` (streamed once per stamp when the file was never read)."""
        key = stamp(path)
        known = self.hashes.known(key)
        return known if known is not None else self.read(path).sha256

    # -- prepared adapters ---------------------------------------------------------------
    def prepared(self, sha256: str, pipeline_id: str):
        return self._get(("prepared", sha256, pipeline_id))

    def keep_prepared(self, sha256: str, pipeline_id: str, prepared, nbytes: int) -> None:
        self._put(("prepared", sha256, pipeline_id), prepared, nbytes)

    def prepared_for(self, pipeline_id: str) -> list[str]:
        """The content hashes with a conversion kept for one pipeline."""
        with self._lock:
            return [k[1] for k in self._entries if k[0] == "prepared" and k[2] == pipeline_id]

    def forget(self, sha256: str, pipeline_id: str) -> None:
        """Drop a file's content and its conversion for one pipeline (its adapter was removed there)."""
        with self._lock:
            for key in (("prepared", sha256, pipeline_id), ("file", sha256)):
                found = self._entries.pop(key, None)
                if found is not None:
                    self._bytes -= found[1]

    def drop_pipeline(self, pipeline_id: str) -> None:
        """Forget every conversion made for one pipeline (it was released)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == "prepared" and k[2] == pipeline_id]:
                self._bytes -= self._entries.pop(key)[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    # -- the one budget ------------------------------------------------------------------
    def _get(self, key: tuple):
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def _put(self, key: tuple, value, nbytes: int) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, nbytes)
            self._bytes += nbytes
            while len(self._entries) > 1 and self._bytes > self.budget_bytes:
                dropped, (_, size) = self._entries.popitem(last=False)
                self._bytes -= size
                log.debug("adapter store: dropped %s (%d bytes)", dropped[:2], size)
