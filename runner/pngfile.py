"""Writing images as ComfyUI's SaveImage does: file naming, counter, and text chunks (shared with the nodes)."""

from __future__ import annotations

from ..nodes.image_files import png_info, to_pil, write_png
from ..nodes.naming import next_counter, save_path

__all__ = ["next_counter", "png_info", "save_path", "to_pil", "write_png"]
