"""The image (and mask) Generate starts from, checked and shaped the way ComfyUI does.

ComfyUI passes IMAGE as [B, H, W, C] floats in 0..1 and MASK as [B, H, W] or [H, W] (1 = repaint).
Like ComfyUI's VAE Encode, the image is centre-cropped to a size the model can encode (a multiple of
the family's pixel multiple); like its inpainting nodes, a mask of another size is resized to the
image's (bilinear) and a single mask applies to every image of a batch. The output has the (cropped)
image's size. Nothing here touches a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import SpecError
from ..models.family import IMG2IMG, INPAINT, TXT2IMG


@dataclass(frozen=True, eq=False)
class Source:
    """A checked img2img/inpainting input: image [B, 3, H, W] and mask [B or 1, 1, H, W], both 0..1."""

    image: torch.Tensor
    mask: torch.Tensor | None = None

    @property
    def mode(self) -> str:
        return IMG2IMG if self.mask is None else INPAINT

    @property
    def batch(self) -> int:
        return int(self.image.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the output."""
        return int(self.image.shape[-1]), int(self.image.shape[-2])

    def pil_images(self) -> list:
        """The images as 8-bit RGB PIL images, for pipelines that read only those (the edit pipelines take the
        image's ``.size`` and resize it themselves)."""
        from PIL import Image

        pixels = (self.image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        return [Image.fromarray(np.ascontiguousarray(p.cpu().numpy())) for p in pixels]


def mode_of(source: Source | None) -> str:
    return TXT2IMG if source is None else source.mode


def pil_images(image: torch.Tensor) -> list:
    """A checked image batch [B, 3, H, W] in 0..1 as PIL RGB images (8 bits per channel, rounded)."""
    from PIL import Image

    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return [Image.fromarray(p) for p in pixels]


def _tensor(value, what: str) -> torch.Tensor:
    from PIL import Image

    if isinstance(value, Image.Image):  # Python API convenience: RGB -> IMAGE layout, L -> MASK layout
        value = np.asarray(value.convert("L" if what == "mask" else "RGB"), dtype=np.float32) / 255.0
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise SpecError(f"{what}: expected a float tensor (ComfyUI's {what.upper()} type), got {type(value).__name__}")
    value = value.detach().to("cpu", torch.float32)
    if not torch.isfinite(value).all():
        raise SpecError(f"{what}: holds NaN or infinite values")
    return value.clamp(0, 1)


def _image(value) -> torch.Tensor:
    image = _tensor(value, "image")
    if image.ndim == 3:  # one image [H, W, C]
        image = image[None]
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4) or image.shape[0] < 1:
        raise SpecError(f"image: expected [batch, height, width, channels] with 1, 3 or 4 channels (ComfyUI's "
                        f"IMAGE layout), got shape {list(image.shape)}")
    image = image[..., :3] if image.shape[-1] == 4 else image.expand(-1, -1, -1, 3)  # drop alpha / grey -> RGB
    return image.permute(0, 3, 1, 2).contiguous()


def _mask(value, image: torch.Tensor) -> torch.Tensor:
    mask = _tensor(value, "mask")
    if mask.ndim == 4 and mask.shape[1] == 1:  # [B, 1, H, W] as diffusers takes it
        mask = mask[:, 0]
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise SpecError(f"mask: expected [height, width] or [batch, height, width] (ComfyUI's MASK layout), "
                        f"got shape {list(mask.shape)}")
    if mask.shape[0] not in (1, image.shape[0]):
        raise SpecError(f"mask: a batch of {mask.shape[0]} masks does not fit a batch of {image.shape[0]} images; "
                        "give one mask (used for every image) or one per image")
    mask = mask[:, None]
    if mask.shape[-2:] != image.shape[-2:]:  # as ComfyUI's inpainting nodes do
        mask = torch.nn.functional.interpolate(mask, size=tuple(image.shape[-2:]), mode="bilinear")
    return mask.clamp(0, 1)


def _crop(tensor: torch.Tensor, multiple: int) -> torch.Tensor:
    """Centre crop of H and W to multiples of ``multiple`` (ComfyUI's VAE Encode does the same)."""
    for dim in (-2, -1):
        size = tensor.shape[dim]
        keep = size // multiple * multiple
        if keep != size:
            tensor = tensor.narrow(dim, (size % multiple) // 2, keep)
    return tensor


def make_source(image, mask, multiple: int) -> Source | None:
    """A Source from ComfyUI's IMAGE and MASK values (either may be None), or SpecError saying what is wrong."""
    if image is None:
        if mask is not None:
            raise SpecError("mask given without an image: inpainting repaints the masked part of an image, so "
                            "connect the image too (e.g. Load Image's IMAGE and MASK outputs)")
        return None
    pixels = _image(image)
    height, width = pixels.shape[-2:]
    if height < multiple or width < multiple:
        raise SpecError(f"image: {width}x{height} is smaller than this model's {multiple}-pixel grid")
    alpha = None if mask is None else _mask(mask, pixels)
    return Source(_crop(pixels, multiple), None if alpha is None else _crop(alpha, multiple))
