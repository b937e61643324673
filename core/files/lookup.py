"""Finding a LoRA named by a workflow among local files, safely: the content hash is the identity,
names are hints.

Shared workflows name files as they were on someone else's machine: other subfolders, Windows
separators, renamed files. Resolution order (``locate``):
1. the name as given, under any LoRA root;
2. the same path with ``\\`` and ``/`` made equal;
3. a file whose hash is one recorded with the node, anywhere in the roots: its SHA-256, civitai's 10-hex AutoV2,
   or the 12-hex hash A1111 / Forge write in ``Lora hashes`` (hashing.py);
4. a file with the same file name in another subfolder, only if it is the only one and (when a hash was
   recorded) its hash matches.
Several same-named candidates, or a hash mismatch, is an error listing them.

Symlinks are followed as ComfyUI's own model lists follow them: a link to a file or a folder anywhere
under a root is used wherever it points (models kept on another disk, shared between installs). What a
name itself can reach stays inside the roots: it is joined to a root as written, never with ``..`` or
as an absolute path, so only a link that sits inside a root can lead out of it. A folder that links
back to one of its own parents (a loop) is walked once; only allowed extensions resolve; names with
control characters are refused.
"""

from __future__ import annotations

import difflib
import errno
import os
import stat
import string
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import LoraFileError
from .hashing import AUTOV2_HEX, AUTOV3_HEX, SHA256_HEX, HashIndex
from .reading import NAME_ADVICE, SAFE_SUFFIXES, unusable

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
    why = unusable(name, MAX_NAME)
    if why:
        raise LoraFileError(repr(name)[:80], f"is not a usable LoRA name ({why})", NAME_ADVICE)
    return name


MAX_FOLDERS = 20_000  # folders walked per listing: links that fan out (a -> b, b -> c, ...) cannot run away


def _parts(name: str) -> list[str] | None:
    """The path components of a workflow's name, or None when it would leave its root by itself (``..``)."""
    parts = [p for p in normalise(name).split("/") if p not in ("", ".")]
    return None if not parts or ".." in parts else parts


def inside(root: str, name: str) -> str | None:
    """The path of ``name`` under ``root`` (symlinks kept as they are, so a link's own name is what is
    shown) if it names a regular file there, else None. The name is joined to the root as written: it
    cannot climb out by itself (``..``, absolute paths), but a symlink inside the root is followed wherever
    it points, as ComfyUI follows it."""
    parts = _parts(name)
    if parts is None:
        return None
    path = os.path.join(os.path.abspath(root), *parts)
    try:
        return path if os.path.isfile(path) else None
    except (ValueError, OSError):  # embedded NUL, too long for the OS
        return None


def _unusable_entry(roots: list[str], name: str) -> str | None:
    """Why an entry called ``name`` under a root cannot be a LoRA file although it exists (a symlink loop, a
    FIFO, socket or device), or None. Never opens it."""
    parts = _parts(name)
    for root in roots if parts else ():
        candidate = os.path.join(os.path.abspath(root), *parts)
        try:
            if not os.path.lexists(candidate):
                continue
        except (ValueError, OSError):
            continue
        try:
            mode = os.stat(candidate).st_mode
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "it is a symlink loop"
            continue
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            return "it is a FIFO, socket or device, not a regular file"
    return None


def listing(roots: Iterable[str], suffixes: tuple[str, ...] = SAFE_SUFFIXES) -> list[str]:
    """Names (``/``-separated, relative to their root) of the regular files under ``roots`` with an
    allowed suffix, symlinked files and folders included as ComfyUI lists them; a loop is walked once."""
    names: dict[str, None] = {}
    for root in (r for r in roots if os.path.isdir(r)):
        for relative in _entries(root):
            if relative.lower().endswith(suffixes) and inside(root, relative):
                names.setdefault(relative.replace(os.sep, "/"), None)
    return sorted(names, key=str.lower)


def _entries(root: str):
    """Relative paths of everything under ``root`` that is not a folder, following symlinked folders
    (breadth-first). A folder whose real path is already one of its own parents' (a link back up the tree,
    a loop) is not entered again, so every loop is walked once; at most MAX_FOLDERS folders are walked."""
    queue: deque[tuple[str, frozenset[str]]] = deque([("", frozenset())])
    walked = 0
    while queue and walked < MAX_FOLDERS:
        relative, parents = queue.popleft()
        folder = os.path.join(root, relative)
        real = os.path.realpath(folder)
        if real in parents:
            continue
        walked += 1
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(relative, entry.name) if relative else entry.name
            if _is_folder(entry):
                queue.append((path, parents | {real}))
            else:
                yield path


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows a symlink; a loop or a dangling link is not a folder
    except OSError:
        return False


def normalise_hash(value) -> str | None:
    """'SHA256:ABC...' / 'abc...' -> lower-case hex if it is a full SHA-256, a 10-hex AutoV2 or A1111's 12-hex
    hash, else None."""
    text = str(value or "").strip().lower().removeprefix("sha256:")
    if len(text) not in (SHA256_HEX, AUTOV2_HEX, AUTOV3_HEX) or any(c not in string.hexdigits for c in text):
        return None
    return text


def _matches(path: str, wanted: set[str], index: HashIndex) -> bool:
    digest = index.sha256(path)
    if digest and (digest in wanted or digest[:AUTOV2_HEX] in wanted):
        return True
    if not any(len(w) == AUTOV3_HEX for w in wanted):
        return False
    a1111 = index.a1111(path)  # streamed only when a 12-hex hash is asked for
    return bool(a1111) and a1111[:AUTOV3_HEX].lower() in wanted


def _first(roots: list[str], name: str) -> str | None:
    return next((p for p in (inside(r, name) for r in roots) if p), None)


def _same_file_name(name: str, known: list[str]) -> list[str]:
    base = name.rsplit("/", 1)[-1].lower()
    return [k for k in known if k.rsplit("/", 1)[-1].lower() == base]


def _by_hash(wanted: set[str], preferred: list[str], roots, known: list[str], index: HashIndex) -> Located | None:
    for candidate in dict.fromkeys([*preferred, *known]):  # same-named files first: likely, and cheap
        path = _first(roots, candidate)
        if path and _matches(path, wanted, index):
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
    if path and wanted and not _matches(path, wanted, index):
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
    why = _unusable_entry(roots, wanted_name)
    if why:
        raise LoraFileError(name, f"is not a usable LoRA name ({why})", NAME_ADVICE)
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
