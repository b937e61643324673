"""Writing images as ComfyUI's SaveImage does: PNG text chunks, written atomically."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..core.files.atomic import write_atomic


def png_info(text: dict[str, object]) -> PngInfo:
    """One text chunk per entry; non-strings as JSON (ComfyUI's ``prompt`` and ``workflow``)."""
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    return info


def to_pil(image) -> Image.Image:
    array = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def write_png(image: Image.Image, path: str, text: dict[str, object], compress_level: int = 4) -> None:
    """Write atomically (an interrupted run leaves no partial PNG), readable as the umask allows."""
    write_atomic(path, lambda f: image.save(f, format="PNG", pnginfo=png_info(text), compress_level=compress_level))
