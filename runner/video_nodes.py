"""Headless stand-ins for ComfyUI's video outputs: Save Animated WEBP (pillow), Create Video and Save Video (an MP4
through PyAV, when it is installed). Same inputs, widget order, file names and metadata as ComfyUI's own nodes
(comfy_extras/nodes_images.py ``SaveAnimatedWEBP``, comfy_extras/nodes_video.py ``CreateVideo`` / ``SaveVideo``,
comfy_api's ``VideoFromComponents.save_to``), so a video workflow runs the same here and in ComfyUI.

An IMAGE batch [frames, H, W, 3] is one video, as ComfyUI takes it (Generate gives a video model's frames so).
Without PyAV (``pip install av``, LoRA Deck's ``video`` extra) Save Video writes nothing and logs how to get it;
the animated WebP needs only pillow.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..core.files.atomic import write_atomic
from ..nodes.image_files import to_pil
from ..nodes.naming import save_path

log = logging.getLogger(__name__)

HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}  # ComfyUI's names for libwebp's effort 0-6
NO_AV = "PyAV is not installed, so no MP4 was written (pip install av, or LoRA Deck's extra: pip install -e '.[video]')"


def have_av() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


class _Saver:
    HEADLESS_CONTEXT = True
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    def __init__(self, context):
        self.context = context

    def target(self, prefix: str, suffix: str) -> tuple[str, str, str]:
        """(path, file name, subfolder) of the next ``<prefix>_<NNNNN>_.<suffix>`` in the output folder."""
        root = self.context.folder("output")
        folder, stem, counter = save_path(root, prefix, f".{suffix}")
        name = f"{stem}_{counter:05}_.{suffix}"
        subfolder = os.path.relpath(folder, root)
        return os.path.join(folder, name), name, "" if subfolder == "." else subfolder


class SaveAnimatedWEBP(_Saver):
    FUNCTION = "save_images"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"}),
            "fps": ("FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01}),
            "lossless": ("BOOLEAN", {"default": True}),
            "quality": ("INT", {"default": 80, "min": 0, "max": 100}),
            "method": (list(WEBP_METHODS),),
        }, "hidden": dict(HIDDEN)}

    def save_images(self, images, filename_prefix="ComfyUI", fps=6.0, lossless=True, quality=80, method="default",
                    prompt=None, extra_pnginfo=None):
        path, name, subfolder = self.target(filename_prefix, "webp")
        frames = [to_pil(image) for image in images]
        exif = frames[0].getexif()
        if prompt is not None:  # where ComfyUI puts them: EXIF Model (0x0110), then Make (0x010F) downwards
            exif[0x0110] = f"prompt:{json.dumps(prompt)}"
        for tag, (key, value) in zip(range(0x010F, 0, -1), (extra_pnginfo or {}).items(), strict=False):
            exif[tag] = f"{key}:{json.dumps(value)}"
        write_atomic(path, lambda f: frames[0].save(
            f, format="WEBP", save_all=True, duration=int(1000.0 / fps), append_images=frames[1:], exif=exif,
            lossless=lossless, quality=quality, method=WEBP_METHODS[method]))
        return {"ui": {"images": [{"filename": name, "subfolder": subfolder, "type": "output"}],
                       "animated": [len(frames) > 1]}}


@dataclass(frozen=True, eq=False)
class Video:
    """What Create Video gives: the frames (an IMAGE batch) and their rate."""

    images: object
    fps: float

    def get_dimensions(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[1])


class CreateVideo:
    FUNCTION = "create"
    RETURN_TYPES = ("VIDEO",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0,
                                                                      "step": 1.0})},
                "optional": {"audio": ("AUDIO",)}}

    def create(self, images, fps=30.0, audio=None):
        if audio is not None:
            log.warning("Create Video: the headless runner writes no audio; the video is saved without it")
        return (Video(images, float(fps)),)


class SaveVideo(_Saver):
    FUNCTION = "save_video"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("VIDEO",), "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
                             "format": (["auto", "mp4"], {"default": "auto"}),
                             "codec": (["auto", "h264"], {"default": "auto"})},
                "hidden": dict(HIDDEN)}

    def save_video(self, video, filename_prefix="video/ComfyUI", format="auto", codec="auto", prompt=None,
                   extra_pnginfo=None):
        if not have_av():
            log.warning("Save Video: %s", NO_AV)
            return {"ui": {}}
        path, name, subfolder = self.target(filename_prefix, "mp4")
        metadata = {**(extra_pnginfo or {}), **({"prompt": prompt} if prompt is not None else {})}
        write_atomic(path, lambda f: write_mp4(f, video.images, video.fps, metadata))
        return {"ui": {"images": [{"filename": name, "subfolder": subfolder, "type": "output"}], "animated": [True]}}


def write_mp4(file, images, fps: float, metadata: dict) -> None:
    """H.264 in MP4, yuv420p, as ComfyUI's ``VideoFromComponents.save_to`` writes it (metadata as JSON tags)."""
    import av

    with av.open(file, mode="w", format="mp4", options={"movflags": "use_metadata_tags"}) as output:
        for key, value in metadata.items():
            output.metadata[key] = json.dumps(value)
        stream = output.add_stream("h264", rate=Fraction(round(fps * 1000), 1000))
        stream.width, stream.height = int(images.shape[2]), int(images.shape[1])
        stream.pix_fmt = "yuv420p"
        for image in images:
            pixels = np.ascontiguousarray((image * 255).clamp(0, 255).byte().cpu().numpy())
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
