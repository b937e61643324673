"""Headless stand-in for ComfyUI's core Load Image node: same input, same IMAGE and MASK outputs.

ComfyUI (nodes.py ``LoadImage``) reads every frame of the same size, applies the EXIF rotation,
scales 16-bit ``I`` images down, returns IMAGE [frames, H, W, 3] float 0..1 from RGB and MASK =
1 - alpha [frames, H, W] (alpha of a palette image's transparency too), or a 64x64 zero mask when
the image has no alpha. Files are looked up in the run's ``--input-dir``, then in the examples'
shipped input folder; a name never leaves those folders.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence

from ..core.files.lookup import inside
from .errors import WorkflowError

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE_INPUTS = os.path.join(PACK_DIR, "example_workflows", "input")
ANNOTATION = " [input]"  # ComfyUI's annotated names: "photo.png [input]" is photo.png in the input folder


def input_roots(input_dir: str) -> list[str]:
    return [os.path.abspath(input_dir), EXAMPLE_INPUTS]


def find_input(name: str, input_dir: str) -> str:
    """The file ``name`` inside the input folders, or a WorkflowError naming it and where it was looked for."""
    name = str(name).removesuffix(ANNOTATION)
    if not name or os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise WorkflowError(f"image {name!r}: give a file name inside the input folder ({input_dir}), "
                            "not an absolute path or one with '..'")
    roots = input_roots(input_dir)
    for root in roots:
        if os.path.isdir(root):
            path = inside(root, name)
            if path:
                return path
    raise WorkflowError(f"image {name!r} was not found in {' or '.join(roots)}; put it in the input folder "
                        "(loradeck run --input-dir DIR)")


def _frame_arrays(frame: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    frame = ImageOps.exif_transpose(frame)
    if frame.mode == "I":
        frame = frame.point(lambda i: i * (1 / 255))
    image = torch.from_numpy(np.array(frame.convert("RGB")).astype(np.float32) / 255.0)
    if "A" in frame.getbands():
        alpha = np.array(frame.getchannel("A")).astype(np.float32) / 255.0
        mask = 1.0 - torch.from_numpy(alpha)
    elif frame.mode == "P" and "transparency" in frame.info:
        alpha = np.array(frame.convert("RGBA").getchannel("A")).astype(np.float32) / 255.0
        mask = 1.0 - torch.from_numpy(alpha)
    else:
        mask = torch.zeros((64, 64), dtype=torch.float32)
    return image, mask


def read_image(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(IMAGE [N, H, W, 3], MASK [N, H, W]) exactly as ComfyUI's LoadImage returns them."""
    try:
        img = Image.open(path)
    except OSError as exc:
        raise WorkflowError(f"image {path!r} cannot be read: {exc}") from None
    images, masks, size = [], [], None
    with img:
        for frame in ImageSequence.Iterator(img):
            image, mask = _frame_arrays(frame)
            size = size or image.shape[:2]
            if image.shape[:2] != size:
                continue  # ComfyUI skips frames of another size
            images.append(image[None])
            masks.append(mask[None])
            if img.format == "MPO":
                break  # ComfyUI keeps only the first frame of MPO files
    return torch.cat(images), torch.cat(masks)


class LoadImage:
    HEADLESS_CONTEXT = True
    FUNCTION = "load_image"
    RETURN_TYPES = ("IMAGE", "MASK")
    CATEGORY = "image"

    def __init__(self, context):
        self.context = context

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ([], {"image_upload": True})}}

    def VALIDATE_INPUTS(self, image):
        """Checked before anything runs, like ComfyUI's 'Invalid image file' (the runner calls it with its context)."""
        try:
            find_input(image, self.context.input_dir)
        except WorkflowError as exc:
            return f"image: {exc}"
        return True

    def load_image(self, image):
        return read_image(find_input(image, self.context.input_dir))
