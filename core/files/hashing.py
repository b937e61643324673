"""Content hashes of LoRA files: one index, keyed by file stamp (real path, size, mtime).

A file's SHA-256 is its identity (adapter keys, shared-workflow relinking). Files read for their tensors
are hashed while they are read and recorded here; files only looked for by hash are streamed through
SHA-256 once per stamp. civitai's "autov2" (first 10 hex of the whole file's SHA-256) is derived.

A1111 and Forge know a LoRA by another hash, the one they write as ``Lora hashes`` and look up when
parameters are pasted (their ``NetworkOnDisk``): the file's ``sshs_model_hash`` metadata when it has one,
else the SHA-256 of the bytes after the safetensors header (kohya's "addnet" hash; the whole file for
other formats), of which they use the first 12 hex digits (their ``shorthash``, civitai's AutoV3).
"""

from __future__ import annotations

import hashlib
import string
import struct
import threading
from collections.abc import Mapping

from ..errors import LoraFileError
from .reading import MAX_FILE_BYTES, MAX_HEADER_BYTES, FileStamp, is_pickle, open_regular, read_metadata, stamp

SHA256_HEX, AUTOV2_HEX, AUTOV3_HEX = 64, 10, 12
CHUNK = 4 * 1024 * 1024
SSHS_KEY = "sshs_model_hash"  # kohya sd-scripts' hash in a file's metadata; A1111 prefers it


def autov2(sha256: str) -> str:
    """civitai's AutoV2: the first 10 hex digits of the whole file's SHA-256."""
    return sha256[:AUTOV2_HEX]


def shorthash(a1111: str) -> str:
    """What A1111 / Forge write in ``Lora hashes`` and look up: the first 12 characters of their hash."""
    return a1111[:AUTOV3_HEX]


def a1111_hash(metadata: Mapping, tensors_sha256: str) -> str:
    """A1111's hash of a file: its ``sshs_model_hash`` metadata when that is a hex digest, else the SHA-256 of
    the bytes after the header (``tensors_sha256``; for a pickle file, the whole file's)."""
    sshs = metadata.get(SSHS_KEY) if isinstance(metadata, Mapping) else None
    if isinstance(sshs, str) and len(sshs) >= AUTOV3_HEX and set(sshs) <= set(string.hexdigits):
        return sshs
    return tensors_sha256


def stream_a1111(path: str) -> str:
    """A1111's hash of a file on disk, streamed: its metadata, then the bytes after the safetensors header."""
    if is_pickle(path):
        return stream_sha256(path)
    metadata = read_metadata(path, allow_pickle=False)
    digest = hashlib.sha256()
    with open_regular(path, path) as f:
        head = f.read(8)
        (length,) = struct.unpack("<Q", head) if len(head) == 8 else (0,)
        f.seek(8 + min(length, MAX_HEADER_BYTES))
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return a1111_hash(metadata, digest.hexdigest())


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
        self._a1111: dict[str, tuple[FileStamp, str]] = {}  # real path -> (stamp, A1111's hash)
        self._lock = threading.Lock()

    def known(self, key: FileStamp) -> str | None:
        """The hash recorded for exactly this stamp (a changed file is unknown again)."""
        with self._lock:
            cached = self._known.get(key.path)
        return cached[1] if cached is not None and cached[0] == key else None

    def record(self, key: FileStamp, sha256: str, a1111: str = "") -> None:
        with self._lock:
            self._known[key.path] = (key, sha256)
            if a1111:
                self._a1111[key.path] = (key, a1111)

    def a1111(self, path: str) -> str | None:
        """A1111's hash of the file (see the module docstring; streamed once per stamp unless the file was read
        for its tensors); None if unreadable or too big."""
        try:
            key = stamp(path)
        except LoraFileError:
            return None
        with self._lock:
            cached = self._a1111.get(key.path)
        if cached is not None and cached[0] == key:
            return cached[1]
        if key.size > MAX_FILE_BYTES:
            return None
        try:
            found = stream_a1111(key.path)
        except (OSError, LoraFileError):
            return None
        with self._lock:
            self._a1111[key.path] = (key, found)
        return found

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
