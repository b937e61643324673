"""A LoRA's preview picture, by the ecosystem's conventions, read safely.

Where a picture is looked for, first found wins:
1. a file beside the LoRA named ``<stem>.preview.png`` / ``.jpg`` / ``.jpeg`` / ``.webp`` (A1111, civitai
   helpers, ComfyUI-Lora-Manager), beside the name the LoRA is listed under (a symlinked LoRA's picture is
   beside the link; a symlinked picture is followed, as every link inside the LoRA roots is);
2. the header's ``modelspec.thumbnail``: a ``data:image/...;base64,`` URI (Stability's model spec).

Both come from strangers: only PNG, JPEG and WebP are served, recognised by their first bytes (never
by the file name alone, never SVG or HTML), and sizes are capped before anything is read in full.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from ..errors import LoraFileError
from .lookup import inside
from .reading import read_metadata

SIDECAR_SUFFIXES = (".preview.png", ".preview.jpg", ".preview.jpeg", ".preview.webp")
THUMBNAIL_KEY = "modelspec.thumbnail"
MAX_PREVIEW_BYTES = 4 * 1024 * 1024
MAX_THUMBNAIL_CHARS = 4 * MAX_PREVIEW_BYTES // 3 + 64  # base64 of MAX_PREVIEW_BYTES, plus the "data:" prefix
DATA_PREFIXES = {"data:image/png;base64,": "image/png", "data:image/jpeg;base64,": "image/jpeg",
                 "data:image/jpg;base64,": "image/jpeg", "data:image/webp;base64,": "image/webp"}


@dataclass(frozen=True)
class Preview:
    data: bytes
    media_type: str  # image/png, image/jpeg or image/webp, from the bytes themselves
    source: str  # "file" or "thumbnail"


def image_type(data: bytes) -> str | None:
    """The media type of PNG, JPEG or WebP bytes, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _stem(path: str) -> str:
    base, _ = os.path.splitext(path)
    return base


def sidecar(lora_path: str) -> str | None:
    """The first preview file beside ``lora_path`` (the path the LoRA was found under) that is a regular file."""
    folder, stem = os.path.split(_stem(lora_path))
    for suffix in SIDECAR_SUFFIXES:
        found = inside(folder, stem + suffix)
        if found:
            return found
    return None


def _read_capped(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PREVIEW_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_PREVIEW_BYTES else None


def thumbnail(value: str) -> Preview | None:
    """A ``data:image/png;base64,...`` URI as a Preview (the declared type must match the bytes)."""
    text = str(value or "").strip()
    if len(text) > MAX_THUMBNAIL_CHARS:
        return None
    declared = next((t for p, t in DATA_PREFIXES.items() if text[: len(p)].lower() == p), None)
    if declared is None:
        return None
    try:
        data = base64.b64decode(text.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    found = image_type(data)
    return Preview(data, found, "thumbnail") if found == declared and len(data) <= MAX_PREVIEW_BYTES else None


def find_preview(lora_path: str) -> Preview | None:
    """The preview picture of the LoRA file at ``lora_path`` (the path it was found under), or None."""
    path = sidecar(lora_path)
    data = _read_capped(path) if path else None
    kind = image_type(data) if data else None
    if kind:
        return Preview(data, kind, "file")
    try:
        meta = read_metadata(lora_path)
    except LoraFileError:
        return None
    return thumbnail(meta.get(THUMBNAIL_KEY, ""))
