"""Contact sheets: for each pair of axes with several values, one sheet per combination of the other axes'
values, rows = the first axis of the pair, columns = the second, labelled as LoRA Grid labels its grid.
Cells that failed or are not rendered yet are grey tiles. Large images are shown as thumbnails (``THUMB``
pixels on the longer side, kept in ``thumbs/`` and shown by the report too)."""

from __future__ import annotations

import itertools
import os

from PIL import Image, ImageDraw

from ..core.files.atomic import write_atomic
from .cells import Plan
from .journal import Journal
from .spec import slug

THUMB = 256
MIN_TILE = 128  # pixels: smaller pictures are drawn 2x, 3x, ... on the sheets
SHEETS, THUMBS = "sheets", "thumbs"
MISSING = (96, 96, 96)


def thumbnail(journal: Journal, record: dict | None) -> str | None:
    """The picture to show for a cell (relative to the output folder): its image when it is at most THUMB
    pixels, else a JPEG thumbnail made once; None when the cell has no image."""
    if not record or record.get("status") != "ok" or not os.path.isfile(journal.image_path(record)):
        return None
    with Image.open(journal.image_path(record)) as image:
        if max(image.size) <= THUMB:
            return record["image"]
        relative = f"{THUMBS}/{os.path.splitext(os.path.basename(record['image']))[0]}.jpg"
        path = os.path.join(journal.folder, relative)
        if not os.path.isfile(path):
            small = image.convert("RGB")
            small.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
            write_atomic(path, lambda f: small.save(f, format="JPEG", quality=90))
        return relative


def _tile(journal: Journal, record: dict | None, size: tuple[int, int]) -> Image.Image:
    shown = thumbnail(journal, record)
    if shown is None:
        tile = Image.new("RGB", size, MISSING)
        draw = ImageDraw.Draw(tile)
        draw.line((0, 0, *size), fill=(140, 140, 140))
        draw.line((0, size[1], size[0], 0), fill=(140, 140, 140))
        return tile
    with Image.open(os.path.join(journal.folder, shown)) as image:
        tile = image.convert("RGB")
    if tile.size == size:
        return tile
    whole = size[0] % tile.size[0] == 0 and size[1] % tile.size[1] == 0 and size[0] > tile.size[0]
    return tile.resize(size, Image.Resampling.NEAREST if whole else Image.Resampling.LANCZOS)


def _cell_size(plan: Plan, journal: Journal) -> tuple[int, int]:
    """The tile size: the first picture's, small pictures scaled up by a whole factor to MIN_TILE pixels (so the
    labels above each column have room; pixels stay sharp squares)."""
    size = (64, 64)
    for cell in plan.cells:
        shown = thumbnail(journal, journal.records.get(cell.key))
        if shown:
            with Image.open(os.path.join(journal.folder, shown)) as image:
                size = image.size
            break
    factor = max(1, -(-MIN_TILE // min(size)))
    return size[0] * factor, size[1] * factor


def write_all(plan: Plan, journal: Journal) -> list[str]:
    """Draw every sheet; returns their paths relative to the output folder."""
    import numpy as np
    import torch

    from ..core.generation.grid_image import compose

    axes = plan.axes
    varying = [i for i, a in enumerate(axes) if len(a.values) > 1]
    if not plan.cells:
        return []
    size = _cell_size(plan, journal)
    by_coords = {cell.coords: cell for cell in plan.cells}
    pairs = list(itertools.combinations(varying, 2)) or [(None, varying[0] if varying else None)]
    written = []
    for rows_axis, columns_axis in pairs:
        others = [i for i in varying if i not in (rows_axis, columns_axis)]
        for fixed in itertools.product(*(range(len(axes[i].values)) for i in others)):
            row_values = range(len(axes[rows_axis].values)) if rows_axis is not None else [None]
            column_values = range(len(axes[columns_axis].values)) if columns_axis is not None else [None]
            tiles = []
            for r in row_values:
                for c in column_values:
                    coords = [0] * len(axes)
                    for i, v in zip(others, fixed, strict=True):
                        coords[i] = v
                    if rows_axis is not None:
                        coords[rows_axis] = r
                    if columns_axis is not None:
                        coords[columns_axis] = c
                    cell = by_coords[tuple(coords)]
                    tiles.append(np.asarray(_tile(journal, journal.records.get(cell.key), size), dtype=np.float32))
            stacked = torch.from_numpy(np.stack(tiles) / 255.0)
            x_labels = [f"{axes[columns_axis].name}: {v.label}" for v in axes[columns_axis].values] \
                if columns_axis is not None else [""]
            y_labels = [f"{axes[rows_axis].name}: {v.label}" for v in axes[rows_axis].values] \
                if rows_axis is not None else [""]
            sheet = compose(stacked, len(column_values), x_labels, y_labels)[0]
            pixels = (sheet.numpy() * 255).round().astype(np.uint8)
            name = sheet_name(axes, rows_axis, columns_axis, others, fixed)
            path = os.path.join(journal.folder, name)
            image = Image.fromarray(pixels)
            write_atomic(path, lambda f, image=image: image.save(f, format="PNG", compress_level=4))
            written.append(name)
    return written


def sheet_name(axes, rows_axis, columns_axis, others, fixed) -> str:
    if rows_axis is None:
        pair = axes[columns_axis].name if columns_axis is not None else "all"
    else:
        pair = f"{axes[rows_axis].name}-x-{axes[columns_axis].name}"
    rest = "_".join(f"{axes[i].name}-{v + 1}-{slug(axes[i].values[v].label, 24) or 'x'}" for i, v in
                    zip(others, fixed, strict=True))
    return f"{SHEETS}/{pair}/{rest or 'all'}.png"


__all__ = ["THUMB", "sheet_name", "thumbnail", "write_all"]
