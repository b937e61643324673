"""Writing images as ComfyUI's SaveImage does: file naming, counter, and text chunks."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo


def next_counter(folder: str, filename: str) -> int:
    """1 + the highest counter among ``<filename>_<NNNNN>_.png`` files already in ``folder``."""
    best = 0
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.lower().startswith(filename.lower() + "_") and name.endswith("_.png"):
                digits = name[len(filename) + 1 :].split("_")[0]
                if digits.isdigit():
                    best = max(best, int(digits))
    return best + 1


def save_path(output_dir: str, prefix: str) -> tuple[str, str, int]:
    """(folder, file name stem, first counter) for a ComfyUI ``filename_prefix`` (may hold subfolders)."""
    output_dir = os.path.abspath(output_dir)
    prefix = os.path.normpath(prefix.replace("\\", "/"))
    folder = os.path.abspath(os.path.join(output_dir, os.path.dirname(prefix)))
    if os.path.commonpath((output_dir, folder)) != output_dir:
        raise ValueError(f"filename_prefix {prefix!r} points outside the output folder")
    stem = os.path.basename(prefix)
    return folder, stem, next_counter(folder, stem)


def png_info(text: dict[str, object]) -> PngInfo:
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    return info


def to_pil(image) -> Image.Image:
    array = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def write_png(image: Image.Image, path: str, text: dict[str, object], compress_level: int = 4) -> None:
    """Write atomically (temp file + rename): an interrupted run leaves no partial PNG."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG", pnginfo=png_info(text), compress_level=compress_level)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
