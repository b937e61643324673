"""Content hashes of LoRA files: one index, keyed by file stamp (real path, size, mtime).

A file's SHA-256 is its identity (adapter keys, shared-workflow relinking, civitai's ``Lora hashes``).
Files read for their tensors are hashed while they are read and recorded here; files only looked
for by hash are streamed through SHA-256 once per stamp. A1111/civitai's "autov2" is derived.
"""

from __future__ import annotations

import hashlib
import threading

from ..errors import LoraFileError
from .reading import MAX_FILE_BYTES, FileStamp, open_regular, stamp

SHA256_HEX, AUTOV2_HEX = 64, 10
CHUNK = 4 * 1024 * 1024


def autov2(sha256: str) -> str:
    """A1111 / civitai short hash: the first 10 hex digits of the file's SHA-256."""
    return sha256[:AUTOV2_HEX]


def stream_sha256(path: str) -> str:
    """SHA-256 of a file, streamed (no tensors parsed, nothing kept in memory)."""
    digest = hashlib.sha256()
    with open_regular(path, path) as f:  # never follows a link swapped in, never blocks on a FIFO
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class HashIndex:
    """stamp -> SHA-256 for every file hashed so far; ``hashed`` counts files streamed for a hash."""

    def __init__(self, hasher=stream_sha256):
        self.hasher = hasher
        self.hashed = 0
        self._known: dict[str, tuple[FileStamp, str]] = {}  # real path -> (stamp when hashed, sha256)
        self._lock = threading.Lock()

    def known(self, key: FileStamp) -> str | None:
        """The hash recorded for exactly this stamp (a changed file is unknown again)."""
        with self._lock:
            cached = self._known.get(key.path)
        return cached[1] if cached is not None and cached[0] == key else None

    def record(self, key: FileStamp, sha256: str) -> None:
        with self._lock:
            self._known[key.path] = (key, sha256)

    def sha256(self, path: str) -> str | None:
        """The file's SHA-256 (hashing it if this stamp is new); None if unreadable or too big."""
        try:
            key = stamp(path)
        except LoraFileError:
            return None
        if key.size > MAX_FILE_BYTES:
            return None
        found = self.known(key)
        if found is not None:
            return found
        with self._lock:  # one thread hashes at a time: two lookups never read the same big file twice
            cached = self._known.get(key.path)
            if cached is not None and cached[0] == key:
                return cached[1]
            try:
                digest = self.hasher(key.path)
            except (OSError, LoraFileError):
                return None
            self.hashed += 1
            self._known[key.path] = (key, digest)
            return digest
