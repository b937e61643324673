"""Resolving a LoRA name from a workflow to one local file, safely.

Shared workflows name files as they were on someone else's machine: other subfolders,
Windows separators. Resolution goes: exact name -> normalised separators -> the same file
name in any subfolder. Names never leave the given roots (``..``, absolute paths, symlinks
pointing out) and only allowed extensions resolve.
"""

from __future__ import annotations

import difflib
import os

from .errors import LoraFileError
from .files import SAFE_SUFFIXES


def normalise(name: str) -> str:
    return name.replace("\\", "/").strip().lstrip("/")


def inside(root: str, name: str) -> str | None:
    """The real path of ``name`` under ``root`` if it stays there and is a file, else None."""
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, normalise(name)))
    if not path.startswith(real_root + os.sep) or not os.path.isfile(path):
        return None
    return path


def resolve_lora(name: str, roots: list[str], known: list[str], suffixes=SAFE_SUFFIXES) -> str:
    """The local path for ``name``; ``known`` is the list of names under ``roots`` (for fallbacks)."""
    wanted = normalise(name)
    if not wanted or not wanted.lower().endswith(suffixes):
        raise LoraFileError(name, f"is not a {'/'.join(suffixes)} file name", suggest(wanted, known))
    for candidate in (name, wanted):
        for root in roots:
            path = inside(root, candidate)
            if path:
                return path
    base = wanted.rsplit("/", 1)[-1].lower()
    same = [k for k in known if k.rsplit("/", 1)[-1].lower() == base]
    for candidate in same:
        for root in roots:
            path = inside(root, candidate)
            if path:
                return path
    raise LoraFileError(name, "was not found in your loras folders", suggest(wanted, known))


def suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    close += [k for k in difflib.get_close_matches(name.rsplit("/", 1)[-1], [k.rsplit("/", 1)[-1] for k in known],
                                                    n=3, cutoff=0.4)
              if k not in close]
    if close:
        return "Closest names: " + ", ".join(repr(c) for c in close[:3]) + ". Put the file in models/loras or pick one."
    return "Put the file in ComfyUI's models/loras folder (any subfolder) or pick another LoRA."
