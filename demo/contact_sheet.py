"""A labelled side-by-side sheet of the demo images."""

from __future__ import annotations

from PIL import Image, ImageDraw

from ..core.atomic import write_atomic

LABEL_HEIGHT = 18


def contact_sheet(items: list[tuple[str, str]], out_path: str, scale: int = 2) -> str:
    """``items`` = [(label, png path)]; images are upscaled ``scale``x (nearest) and labelled underneath."""
    images = [(label, Image.open(path).convert("RGB")) for label, path in items]
    w = max(img.width for _, img in images) * scale
    h = max(img.height for _, img in images) * scale
    sheet = Image.new("RGB", (w * len(images), h + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, img) in enumerate(images):
        sheet.paste(img.resize((img.width * scale, img.height * scale), Image.NEAREST), (i * w, 0))
        draw.text((i * w + 4, h + 3), label, fill="black")
    return write_atomic(out_path, lambda f: sheet.save(f, format="PNG"))
