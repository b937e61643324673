"""Headless stand-ins for ComfyUI's SaveImage and PreviewImage (same inputs, files and metadata)."""

from __future__ import annotations

import os
import random
import string

from .pngfile import save_path, to_pil, write_png


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
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def folder(self) -> str:
        return os.path.join(self.context.output_dir, self.SUBDIR)

    def save_images(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        folder, stem, counter = save_path(self.folder(), filename_prefix)
        text = {**({"prompt": prompt} if prompt is not None else {}), **(extra_pnginfo or {})}
        results = []
        for batch_number, image in enumerate(images):
            name = f"{stem.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
            path = os.path.join(folder, name)
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
        return {"required": {"images": ("IMAGE",)}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def save_images(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
        return super().save_images(images, f"ComfyUI_temp_{suffix}", prompt, extra_pnginfo)
