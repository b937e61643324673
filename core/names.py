"""Resolving a LoRA name from a workflow to one local file, safely.

Shared workflows name files as they were on someone else's machine: other subfolders,
Windows separators, other names. Resolution goes: exact name -> normalised separators ->
the same file name in any subfolder -> the content hash recorded with the node (SHA-256 or
A1111's 10-hex "autov2"). Names never leave the given roots (``..``, absolute paths, symlinks
pointing out) and only allowed extensions resolve. Hashing reads whole files, so it happens
only when no name matched, and each file is hashed once per (path, size, mtime).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import string
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import LoraFileError
from .files import MAX_FILE_BYTES, SAFE_SUFFIXES, FileStamp, stamp

SHA256_HEX, AUTOV2_HEX = 64, 10
CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Located:
    """Where a name resolved: the real path, the name as listed under its root, and which rule found it."""

    path: str
    name: str
    how: str  # "exact", "separators", "subfolder" or "hash"


def normalise(name: str) -> str:
    return name.replace("\\", "/").strip().lstrip("/")


def inside(root: str, name: str) -> str | None:
    """The real path of ``name`` under ``root`` if it stays there and is a file, else None."""
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, normalise(name)))
    if not path.startswith(real_root + os.sep) or not os.path.isfile(path):
        return None
    return path


def normalise_hash(value) -> str | None:
    """'SHA256:ABC...' / 'abc...' -> lower-case hex if it is a full SHA-256 or a 10-hex autov2, else None."""
    text = str(value or "").strip().lower().removeprefix("sha256:")
    if len(text) not in (SHA256_HEX, AUTOV2_HEX) or any(c not in string.hexdigits for c in text):
        return None
    return text


def file_sha256(path: str) -> str:
    """SHA-256 of a file, streamed (no tensors parsed, nothing kept in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class HashIndex:
    """SHA-256 of the files under the LoRA roots, computed lazily and cached by (path, size, mtime)."""

    def __init__(self, hasher: Callable[[str], str] = file_sha256):
        self.hasher = hasher
        self._known: dict[str, tuple[FileStamp, str]] = {}  # real path -> (stamp when hashed, sha256)
        self._lock = threading.Lock()

    def sha256(self, path: str) -> str | None:
        """The file's SHA-256 (cached while its size and mtime stay the same); None if unreadable or too big."""
        try:
            key = stamp(path)
        except LoraFileError:
            return None
        if key.size > MAX_FILE_BYTES:
            return None
        with self._lock:  # one thread hashes at a time: two lookups never read the same big file twice
            cached = self._known.get(key.path)
            if cached is None or cached[0] != key:
                try:
                    cached = (key, self.hasher(key.path))
                except OSError:
                    return None
                self._known[key.path] = cached
            return cached[1]

    def find(self, hashes: Iterable[str], roots: list[str], known: list[str]) -> Located | None:
        """The first listed file whose SHA-256 (or its autov2 prefix) is one of ``hashes``."""
        wanted = {h for h in map(normalise_hash, hashes) if h}
        if not wanted:
            return None
        for name in known:
            for root in roots:
                path = inside(root, name)
                digest = self.sha256(path) if path else None
                if digest and (digest in wanted or digest[:AUTOV2_HEX] in wanted):
                    return Located(path, name, "hash")
        return None


HASH_INDEX = HashIndex()


def _by_name(name: str, wanted: str, roots: list[str], known: list[str]) -> Located | None:
    how = "exact" if name == wanted else "separators"
    for root in roots:
        path = inside(root, wanted)
        if path:
            return Located(path, wanted, how)
    base = wanted.rsplit("/", 1)[-1].lower()
    for candidate in (k for k in known if k.rsplit("/", 1)[-1].lower() == base):
        for root in roots:
            path = inside(root, candidate)
            if path:
                return Located(path, candidate, "subfolder")
    return None


def locate(name: str, roots: list[str], known: list[str], hashes: Iterable[str] = (),
           index: HashIndex | None = None, suffixes=SAFE_SUFFIXES) -> Located:
    """Where ``name`` is (``known``: the names listed under ``roots``); ``hashes`` were recorded with the node."""
    wanted = normalise(name)
    if not wanted or not wanted.lower().endswith(suffixes):
        raise LoraFileError(name, f"is not a {'/'.join(suffixes)} file name", suggest(wanted, known))
    hashes = tuple(hashes)
    found = _by_name(name, wanted, roots, known) or (
        (index or HASH_INDEX).find(hashes, roots, known) if hashes else None)
    if found is None:
        how = ", by name or by the hash recorded with the node" if hashes else ""
        raise LoraFileError(name, f"was not found in your loras folders{how}", suggest(wanted, known))
    return found


def resolve_lora(name: str, roots: list[str], known: list[str], suffixes=SAFE_SUFFIXES,
                 hashes: Iterable[str] = (), index: HashIndex | None = None) -> str:
    """The local path for ``name``; ``known`` is the list of names under ``roots`` (for fallbacks)."""
    return locate(name, roots, known, hashes, index, suffixes).path


def suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    close += [k for k in difflib.get_close_matches(name.rsplit("/", 1)[-1], [k.rsplit("/", 1)[-1] for k in known],
                                                    n=3, cutoff=0.4)
              if k not in close]
    if close:
        return "Closest names: " + ", ".join(repr(c) for c in close[:3]) + ". Put the file in models/loras or pick one."
    return "Put the file in ComfyUI's models/loras folder (any subfolder) or pick another LoRA."
