"""Headless stand-ins for ComfyUI's SaveImage and PreviewImage (same inputs, files and metadata)."""

from __future__ import annotations

import os
import random
import string

from ..nodes import host
from .parameters import for_save_node
from .pngfile import save_path, to_pil, write_png

HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"}


class SaveImage:
    HEADLESS_CONTEXT = True
    OUTPUT_NODE = True
    FUNCTION = "save_images"
    RETURN_TYPES = ()
    COMPRESS_LEVEL = 4
    SUBDIR = ""

    def __init__(self, context):
        self.context = context

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})},
                "hidden": dict(HIDDEN)}

    def folder(self) -> str:
        return os.path.join(self.context.output_dir, self.SUBDIR)

    def text_chunks(self, prompt, extra_pnginfo, unique_id, images=None, index: int = 0) -> dict:
        """ComfyUI's ``prompt`` and ``workflow`` chunks, plus A1111 ``parameters`` when a Generate (or LoRA Grid)
        made the images: the text it recorded with them, else the one read from the graph."""
        text = {**({"prompt": prompt} if prompt is not None else {}), **(extra_pnginfo or {})}
        recorded = host.runtime().image_info.for_image(images, index) if images is not None else None
        parameters = recorded or for_save_node(self.context.prompt, self.context.inputs, unique_id)
        return {**text, "parameters": parameters} if parameters else text

    def save_images(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None, unique_id=None):
        folder, stem, counter = save_path(self.folder(), filename_prefix)
        results = []
        for batch_number, image in enumerate(images):
            name = f"{stem.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
            path = os.path.join(folder, name)
            text = self.text_chunks(prompt, extra_pnginfo, unique_id, images, batch_number)
            write_png(to_pil(image), path, text, self.COMPRESS_LEVEL)
            self.context.saved.append(path)
            subfolder = os.path.relpath(folder, self.folder())
            results.append({"filename": name, "subfolder": "" if subfolder == "." else subfolder, "type": "output"})
            counter += 1
        return {"ui": {"images": results}}


class PreviewImage(SaveImage):
    COMPRESS_LEVEL = 1
    SUBDIR = "temp"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}, "hidden": dict(HIDDEN)}

    def save_images(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None, unique_id=None):
        suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
        return super().save_images(images, f"ComfyUI_temp_{suffix}", prompt, extra_pnginfo, unique_id)
