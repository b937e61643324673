"""Finding a LoRA named by a workflow among local files, safely: the content hash is the identity,
names are hints.

Shared workflows name files as they were on someone else's machine: other subfolders, Windows
separators, renamed files. Resolution order (``locate``):
1. the name as given, under any LoRA root;
2. the same path with ``\\`` and ``/`` made equal;
3. a file whose SHA-256 (or A1111's 10-hex "autov2") is one recorded with the node, anywhere in the roots;
4. a file with the same file name in another subfolder, only if it is the only one and (when a hash was
   recorded) its hash matches.
Several same-named candidates, or a hash mismatch, is an error listing them. Names never leave the
roots (``..``, absolute paths, symlinks pointing out), only allowed extensions resolve, names with
control characters are refused, and listing never follows a symlink loop.
"""

from __future__ import annotations

import difflib
import os
import string
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import LoraFileError
from .files import SAFE_SUFFIXES
from .hashing import AUTOV2_HEX, SHA256_HEX, HashIndex

MAX_NAME = 1024  # characters; longer is not a file name anyone typed


@dataclass(frozen=True)
class Located:
    """Where a name resolved: the real path, the name as listed under its root, and which rule found it."""

    path: str
    name: str
    how: str  # "exact", "separators", "hash" or "file name"


def normalise(name: str) -> str:
    return name.replace("\\", "/").strip().lstrip("/")


def check_name(name) -> str:
    """``name`` if a person could have meant it as a file name, else LoraFileError (never a crash later)."""
    text = name if isinstance(name, str) else ""
    bad = (not text.strip() and "it is empty") or (len(text) > MAX_NAME and f"it is over {MAX_NAME} characters") or (
        any(ord(c) < 32 or ord(c) == 127 for c in text) and "it contains control characters (e.g. a NUL byte)")
    if not isinstance(name, str) or bad:
        shown = repr(name)[:80]
        raise LoraFileError(shown, f"is not a usable LoRA name ({bad or 'not text'})",
                            "Pick a LoRA file from the list, or type its name as it appears there.")
    return text


def _real_roots(roots: Iterable[str]) -> list[str]:
    return [os.path.realpath(r) for r in roots if os.path.isdir(r)]


def _within(path: str, real_roots: list[str]) -> bool:
    return any(path.startswith(root + os.sep) for root in real_roots)


def inside(root: str, name: str, allowed: Iterable[str] = ()) -> str | None:
    """The real path of ``name`` under ``root`` if it is a regular file that stays inside ``root`` (or
    one of the ``allowed`` roots, for symlinks between them), else None."""
    real_root = os.path.realpath(root)
    try:
        path = os.path.realpath(os.path.join(real_root, normalise(name)))
    except (ValueError, OSError):  # embedded NUL, too long for the OS
        return None
    if not _within(path, [real_root, *_real_roots(allowed)]) or not os.path.isfile(path):
        return None
    return path


def listing(roots: Iterable[str], suffixes: tuple[str, ...] = SAFE_SUFFIXES) -> list[str]:
    """Names (``/``-separated, relative to their root) of the regular files under ``roots`` with an
    allowed suffix; symlinks count only when their target stays inside a root; loops are never followed."""
    roots = [r for r in roots if os.path.isdir(r)]
    real_roots = _real_roots(roots)
    names: dict[str, None] = {}
    for root in roots:
        seen: set[str] = set()
        for folder, dirs, files in os.walk(root, followlinks=True):
            real = os.path.realpath(folder)
            if real in seen or not (real in real_roots or _within(real, real_roots)):
                dirs[:] = []
                continue
            seen.add(real)
            dirs.sort()
            for file in sorted(files):
                path = os.path.join(folder, file)
                if file.lower().endswith(suffixes) and inside(root, os.path.relpath(path, root), roots):
                    names.setdefault(os.path.relpath(path, root).replace(os.sep, "/"), None)
    return sorted(names, key=str.lower)


def normalise_hash(value) -> str | None:
    """'SHA256:ABC...' / 'abc...' -> lower-case hex if it is a full SHA-256 or a 10-hex autov2, else None."""
    text = str(value or "").strip().lower().removeprefix("sha256:")
    if len(text) not in (SHA256_HEX, AUTOV2_HEX) or any(c not in string.hexdigits for c in text):
        return None
    return text


def _matches(digest: str | None, wanted: set[str]) -> bool:
    return bool(digest) and (digest in wanted or digest[:AUTOV2_HEX] in wanted)


def _first(roots: list[str], name: str) -> str | None:
    return next((p for p in (inside(r, name, roots) for r in roots) if p), None)


def _same_file_name(name: str, known: list[str]) -> list[str]:
    base = name.rsplit("/", 1)[-1].lower()
    return [k for k in known if k.rsplit("/", 1)[-1].lower() == base]


def _by_hash(wanted: set[str], preferred: list[str], roots, known: list[str], index: HashIndex) -> Located | None:
    for candidate in dict.fromkeys([*preferred, *known]):  # same-named files first: likely, and cheap
        path = _first(roots, candidate)
        if path and _matches(index.sha256(path), wanted):
            return Located(path, candidate, "hash")
    return None


def _by_file_name(name: str, same: list[str], roots, wanted: set[str], index: HashIndex) -> Located | None:
    if len(same) > 1:
        raise LoraFileError(name, f"was not found, and {len(same)} files elsewhere have its file name: "
                            f"{', '.join(map(repr, same[:6]))}",
                            "Pick the right one in the node (the workflow recorded no hash that tells them apart).")
    if not same:
        return None
    path = _first(roots, same[0])
    if path and wanted and not _matches(index.sha256(path), wanted):
        raise LoraFileError(name, f"was not found; {same[0]!r} has its file name but different content than the "
                            "file the workflow was saved with", "Get the original file or pick this one knowingly.")
    return Located(path, same[0], "file name") if path else None


def locate(name: str, roots: list[str], hashes: Iterable[str] = (), index: HashIndex | None = None,
           suffixes: tuple[str, ...] = SAFE_SUFFIXES) -> Located:
    """Where the LoRA ``name`` (with ``hashes`` recorded by the workflow) is among ``roots``; LoraFileError if
    nowhere, or if it cannot be told which file it is."""
    name = check_name(name)
    wanted_name = normalise(name)
    if not wanted_name.lower().endswith(suffixes):
        raise LoraFileError(name, f"is not a {'/'.join(suffixes)} file name", suggest(wanted_name, listing(roots)))
    path = _first(roots, wanted_name)
    if path:
        return Located(path, wanted_name, "exact" if name == wanted_name else "separators")
    known = listing(roots, suffixes)
    wanted = {h for h in map(normalise_hash, hashes) if h}
    same = _same_file_name(wanted_name, known)
    index = index or HashIndex()
    found = (_by_hash(wanted, same, roots, known, index) if wanted else None) or \
        _by_file_name(name, same, roots, wanted, index)
    if found is None:
        how = ", by name or by the hash recorded with the node" if wanted else ""
        raise LoraFileError(name, f"was not found in your loras folders{how}", suggest(wanted_name, known))
    return found


def suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    close += [k for k in difflib.get_close_matches(name.rsplit("/", 1)[-1], [k.rsplit("/", 1)[-1] for k in known],
                                                    n=3, cutoff=0.4)
              if k not in close]
    if close:
        return "Closest names: " + ", ".join(repr(c) for c in close[:3]) + ". Put the file in models/loras or pick one."
    return "Put the file in ComfyUI's models/loras folder (any subfolder) or pick another LoRA."
