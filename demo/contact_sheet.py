"""A labelled grid of the demo images."""

from __future__ import annotations

from PIL import Image, ImageDraw

from ..core.files.atomic import write_atomic

LABEL_HEIGHT = 18


def contact_sheet(items: list[tuple[str, str]], out_path: str, scale: int = 2, columns: int = 4) -> str:
    """``items`` = [(label, png path)]; images are upscaled ``scale``x (nearest), labelled underneath, ``columns``
    to a row."""
    images = [(label, Image.open(path).convert("RGB")) for label, path in items]
    w = max(img.width for _, img in images) * scale
    h = max(img.height for _, img in images) * scale + LABEL_HEIGHT
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (w * columns, h * rows), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, img) in enumerate(images):
        x, y = (i % columns) * w, (i // columns) * h
        sheet.paste(img.resize((img.width * scale, img.height * scale), Image.NEAREST), (x, y))
        draw.text((x + 4, y + h - LABEL_HEIGHT + 3), label, fill="black")
    return write_atomic(out_path, lambda f: sheet.save(f, format="PNG"))
