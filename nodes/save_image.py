from __future__ import annotations

import os

from . import host
from .common import CATEGORY, node_id
from .image_files import to_pil, write_png
from .native import parameters as native_parameters
from .native import state as native_state

HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"}


class SaveImage:
    """ComfyUI's Save Image plus the A1111 ``parameters`` text civitai reads (``Lora hashes``, steps, sampler,
    seed, CFG, size, model). The text comes from the ``parameters`` input when connected, else from the node
    that made these very images (Generate and LoRA Grid record it with the IMAGE tensor they return), else, for
    ComfyUI's own samplers, from the queued prompt and the LoRA Loader (LoRA Deck) stacks behind the sampler."""

    NODE_ID = node_id("SaveImage")
    DISPLAY_NAME = "Save Image (LoRA Deck)"
    DESCRIPTION = ("Saves images like Save Image (same file names, workflow embedded) and adds the A1111 "
                   "'parameters' text with the LoRAs' hashes, so civitai credits them and A1111 reads the settings.")
    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    HEADLESS_CONTEXT = True  # the headless runner passes its run context (output folder); it lists the files from "ui"
    RETURN_TYPES = ()
    OUTPUT_TOOLTIPS = ()
    FUNCTION = "save_images"
    COMPRESS_LEVEL = 4  # ComfyUI's

    def __init__(self, context=None):
        self.context = context

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The images to save (from Generate or LoRA Grid: their parameters "
                                            "come with them)."}),
            "filename_prefix": ("STRING", {"default": "ComfyUI", "tooltip": (
                "The file name prefix, as on Save Image: subfolders with /, %width%, %height%, %batch_num%; "
                "a number is appended.")}),
        }, "optional": {
            "parameters": ("STRING", {"forceInput": True, "tooltip": (
                "The parameters text to write (Generate's 'parameters' output). Needed only when other nodes "
                "changed the images on the way; otherwise it is found by itself.")}),
        }, "hidden": dict(HIDDEN)}

    def _texts(self, images, parameters, prompt=None, unique_id=None) -> list[str | None]:
        if parameters:
            return [parameters] * len(images)
        runtime = host.runtime()
        texts = [runtime.image_info.for_image(images, i) for i in range(len(images))]
        if None in texts and isinstance(prompt, dict) and unique_id is not None:  # ComfyUI's own sampler made them
            size = (int(images.shape[2]), int(images.shape[1]))
            native = native_parameters.text(prompt, unique_id, size, native_state.of(runtime).applied, runtime.hashes)
            texts = [native if t is None else t for t in texts]
        return texts

    def save_images(self, images, filename_prefix="ComfyUI", parameters=None, prompt=None, extra_pnginfo=None,
                    unique_id=None):
        output = self.context.output_dir if self.context is not None else None
        folder, stem, counter, subfolder = host.save_image_path(filename_prefix, images.shape[2], images.shape[1],
                                                                output)
        chunks = {} if host.metadata_disabled() else {
            **({"prompt": prompt} if prompt is not None else {}), **(extra_pnginfo or {})}
        results = []
        texts = self._texts(images, parameters, prompt, unique_id)
        for batch_number, (image, text) in enumerate(zip(images, texts, strict=True)):
            name = f"{stem.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
            path = os.path.join(folder, name)
            extra = {"parameters": text} if text and not host.metadata_disabled() else {}
            write_png(to_pil(image), path, {**chunks, **extra}, self.COMPRESS_LEVEL)
            results.append({"filename": name, "subfolder": subfolder, "type": "output"})
            counter += 1
        return {"ui": {"images": results}}
