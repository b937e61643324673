"""Drawing the LoRA Grid: the cells in rows and columns, the X values above, the Y values on the left."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

BACKGROUND, INK = (255, 255, 255), (20, 20, 20)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def wrap(text: str, font, width: int) -> list[str]:
    """Lines of ``text`` no wider than ``width`` pixels (words split only when one alone is too wide)."""
    lines, current = [], ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if font.getlength(trial) <= width or not current:
            current = trial
        else:
            lines.append(current)
            current = word
        while font.getlength(current) > width and len(current) > 1:
            cut = max(1, int(len(current) * width / font.getlength(current)))
            lines.append(current[:cut])
            current = current[cut:]
    return [*lines, current] if current else lines or [""]


def compose(cells: torch.Tensor, columns: int, x_labels, y_labels) -> torch.Tensor:
    """One IMAGE [1, H, W, 3]: ``cells`` [N, h, w, 3] row-major in ``columns`` columns, with labels drawn in
    (no band for an axis whose labels are all empty)."""
    count, height, width, _ = cells.shape
    rows = count // columns
    font = _font(max(10, min(32, height // 10)))
    line = int(sum(font.getmetrics())) + 2
    pad = line // 3
    x_lines = [wrap(t, font, width - 2 * pad) if t else [] for t in x_labels]
    left_width = min(2 * width, max(width // 2, 4 * line))
    y_lines = [wrap(t, font, left_width - 2 * pad) if t else [] for t in y_labels]
    top = (max(map(len, x_lines)) * line + 2 * pad) if any(x_lines) else 0
    left = left_width if any(y_lines) else 0
    canvas = Image.new("RGB", (left + columns * width, top + rows * height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    pixels = (cells.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    for i in range(count):
        row, column = divmod(i, columns)
        canvas.paste(Image.fromarray(pixels[i]), (left + column * width, top + row * height))
    for column, lines in enumerate(x_lines):
        for j, text in enumerate(lines):
            x = left + column * width + (width - font.getlength(text)) / 2
            draw.text((x, pad + j * line), text, fill=INK, font=font)
    for row, lines in enumerate(y_lines):
        y0 = top + row * height + (height - len(lines) * line) / 2
        for j, text in enumerate(lines):
            draw.text((pad, y0 + j * line), text, fill=INK, font=font)
    array = np.asarray(canvas, dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy())[None]
