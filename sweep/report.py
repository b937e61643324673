"""The manifest (every cell -> parameters, file hashes, A1111 parameters text, image or failure) and the HTML
report: one static page, no script, no outside resource, every text escaped (prompts and file names are the
user's, metadata may be anyone's). Tables: rows = one axis, columns = another (``[report]`` in the spec, else
the first two axes with several values), one table per combination of the other axes' values, so every cell
is on the page; failed cells show their reason."""

from __future__ import annotations

import html
import itertools
import os

from ..core.files.atomic import write_atomic
from ..core.files.hashing import autov2
from . import cells as cells_module
from .cells import Cell, Plan
from .journal import Journal, now
from .sheets import thumbnail
from .spec import shown

REPORT = "report.html"


def _literal(value) -> bool:
    return not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], int))


def parameters(plan: Plan, cell: Cell) -> dict:
    """What a cell is, read from its workflow: model, LoRAs (with hashes and strengths), weights, Generate inputs."""
    out: dict = {"loras": [], "weights": ""}
    for node in cell.prompt.values():
        kind, inputs = node.get("class_type"), node.get("inputs", {})
        if kind == cells_module.PIPELINE:
            out["model"], out["dtype"] = inputs.get("model_name"), inputs.get("dtype", "auto")
        elif kind == cells_module.LORA:
            name = inputs.get("lora_name")
            out["loras"].append({"name": name, "adapter": inputs.get("adapter_name") or "",
                                 "strength_model": inputs.get("strength_model"),
                                 "strength_clip": inputs.get("strength_clip"), "sha256": plan.hashes.get(name)})
        elif kind == cells_module.WEIGHTS and _literal(inputs.get("weights")):
            out["weights"] += str(inputs.get("weights", ""))
    generate = cell.prompt[plan.generate_id]["inputs"]
    out["generate"] = {k: v for k, v in generate.items() if k != "pipeline" and _literal(v)}
    return out


def manifest(plan: Plan, journal: Journal, state: dict) -> dict:
    cells, keys = [], {}
    for cell in plan.cells:
        record = journal.records.get(cell.key, {})
        status = record.get("status", "pending")
        entry = {"index": cell.index + 1, "name": cell.name, "key": cell.key, "status": status,
                 "values": {a.name: label for a, label in zip(plan.axes, cell.labels, strict=True)},
                 "parameters": parameters(plan, cell),
                 "files": [{"name": n, "sha256": d, "autov2": autov2(d)} for n, d in cell.files]}
        if status == "ok":
            entry.update(image=record.get("image"), image_sha256=record.get("image_sha256"),
                         a1111=record.get("a1111", ""))
        elif status != "pending":
            entry["error"] = record.get("error", "")
        if record:
            entry.update(seconds=record.get("seconds", {}), worker=record.get("worker"), host=record.get("host"),
                         attempts=record.get("attempts"), finished=record.get("finished"))
        entry["workflow"] = cell.prompt
        cells.append(entry)
        keys[cell.key] = status
    statuses = list(keys.values())
    spec = plan.spec
    return {
        "loradeck_sweep": 1, "name": spec.name, "spec": spec.source, "output": spec.output,
        "model": spec.model or None, "workflow": spec.workflow or None, "models_dir": spec.models_dir,
        "axes": [{"name": a.name, **({"adapter": a.adapter} if a.adapter else {}),
                  "values": [{"label": v.label, "value": v.value} for v in a.values]} for a in plan.axes],
        "counts": {"cells": len(plan.cells), "unique": len(keys), "ok": statuses.count("ok"),
                   "failed": statuses.count("failed") + statuses.count("error"), "pending": statuses.count("pending")},
        "run": {"written": now(), "interrupted": state.get("interrupted", False), "rendered": state.get("rendered", 0),
                "workers": state.get("workers", []), "restarts": state.get("restarts", 0)},
        "cells": cells,
    }


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #1d1d1d; background: #fafafa; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.summary span { margin-right: 14px; } .bad { color: #b00020; font-weight: 600; }
table { border-collapse: collapse; } th { font-weight: 600; text-align: left; vertical-align: top; padding: 4px 6px; }
thead th { text-align: center; }
td { padding: 4px; vertical-align: top; }
figure { margin: 0; }
figure img { display: block; image-rendering: auto; background: #ddd; }
figcaption { font-size: 11px; color: #555; max-width: 256px; overflow-wrap: anywhere; }
.tile { display: flex; align-items: center; justify-content: center; background: #606060; color: #fff;
        font-weight: 600; }
.failed .tile { background: #8a1c1c; }
.error { font-size: 11px; color: #b00020; max-width: 256px; overflow-wrap: anywhere; margin: 2px 0; }
details pre { font-size: 11px; white-space: pre-wrap; max-width: 420px; overflow-wrap: anywhere; }
ul.sheets { columns: 2; }
"""


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _image_size(journal: Journal, relative: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(os.path.join(journal.folder, relative)) as image:
        return image.size


def _figure(plan: Plan, journal: Journal, cell: Cell, size: tuple[int, int], shown_axes: list[int],
            lazy: bool) -> str:
    record = journal.records.get(cell.key, {})
    status = record.get("status", "pending")
    labels = " · ".join(f"{plan.axes[i].name}: {cell.labels[i]}" for i in shown_axes)
    caption = f"<figcaption>{_esc(labels)}</figcaption>" if labels else ""
    attrs = f'class="cell {_esc(status)}" id="cell-{_esc(cell.index + 1)}" data-key="{_esc(cell.key)}" ' \
            f'data-status="{_esc(status)}"'
    picture = thumbnail(journal, record) if status == "ok" else None
    if picture:
        width, height = _image_size(journal, picture)
        img = (f'<a href="{_esc(record["image"])}"><img src="{_esc(picture)}" width="{width}" height="{height}" '
               f'alt="{_esc(labels or cell.name)}"{" loading=lazy" if lazy else ""}></a>')
        details = f"<details><summary>parameters</summary><pre>{_esc(record.get('a1111', ''))}</pre></details>"
        return f"<figure {attrs}>{img}{caption}{details}</figure>"
    word = {"failed": "failed", "error": "failed", "pending": "not rendered"}.get(status, status)
    tile = f'<div class="tile" style="width:{size[0]}px;height:{size[1]}px">{_esc(word)}</div>'
    error = f'<p class="error">{_esc(record.get("error", ""))}</p>' if record.get("error") else ""
    return f"<figure {attrs}>{tile}{caption}{error}</figure>"


def _layout(plan: Plan) -> tuple[int | None, int | None, list[int]]:
    names = [a.name for a in plan.axes]
    varying = [i for i, a in enumerate(plan.axes) if len(a.values) > 1]
    rows = names.index(plan.spec.rows) if plan.spec.rows else None
    columns = names.index(plan.spec.columns) if plan.spec.columns else None
    free = [i for i in varying if i not in (rows, columns)]
    if rows is None and free:
        rows = free.pop(0)
    if columns is None and free:
        columns = free.pop(0)
    if rows is not None and columns is None:  # one axis: a single row reads better than a column
        rows, columns = None, rows
    return rows, columns, free


def _shared(plan: Plan) -> str:
    """What every cell shares: the Generate inputs no axis changes, and the LoRAs under every cell."""
    if not plan.cells:
        return ""
    swept = {a.name for a in plan.axes if a.kind == "input"}
    first = parameters(plan, plan.cells[0])
    settings = [f"{k}: {v}" for k, v in first["generate"].items() if k not in swept and k != "batch_size"
                and v != ""]
    axis_lora = {v.value for a in plan.axes if a.kind == "lora" for v in a.values}
    stack = [f"{lora['adapter'] or lora['name']} ({shown(lora['strength_model'])} / {shown(lora['strength_clip'])})"
             for lora in first["loras"] if lora["name"] not in axis_lora]
    text = "Every cell: " + "; ".join(settings)
    if stack:
        text += "; under every cell: " + ", ".join(stack)
    return f"<p>{_esc(text)}</p>"


def write_html(plan: Plan, journal: Journal, manifest_value: dict, sheets: list[str]) -> str:
    rows, columns, others = _layout(plan)
    axes = plan.axes
    size = next((_image_size(journal, p) for c in plan.cells
                 if (p := thumbnail(journal, journal.records.get(c.key)))), (64, 64))
    by_coords = {cell.coords: cell for cell in plan.cells}
    lazy = len(plan.cells) > 2000
    counts = manifest_value["counts"]
    spec = plan.spec
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self' file: data:; "
             "style-src 'unsafe-inline'\">",
             f"<title>LoRA Deck sweep: {_esc(spec.name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>LoRA Deck sweep: {_esc(spec.name)}</h1>",
             '<p class="summary">'
             f"<span>{counts['cells']} cells</span><span>{counts['ok']} rendered</span>"
             f"<span class=\"{'bad' if counts['failed'] else ''}\">{counts['failed']} failed</span>"
             f"<span>{counts['pending']} not rendered</span>"
             f"<span>model: {_esc(spec.model or os.path.basename(spec.workflow))}</span>"
             f"<span>written {_esc(manifest_value['run']['written'])}</span></p>",
             "<p>Axes: " + "; ".join(f"<b>{_esc(a.name)}</b>{' of ' + _esc(a.adapter) if a.adapter else ''} "
                                     f"({len(a.values)}): " + _esc(", ".join(v.label for v in a.values))
                                     for a in axes) + "</p>" if axes else "",
             _shared(plan),
             "<p>Each image carries its workflow: <code>loradeck run images/NAME.png</code> renders it again "
             "(the same pixels with the same torch thread count: <code>OMP_NUM_THREADS=1</code> on CPU "
             "workers). Every cell's parameters, file hashes and A1111 text: <a href=\"manifest.json\">"
             "manifest.json</a>.</p>"]
    captioned = [i for i in (rows, columns) if i is not None]  # the slice's own axes are in its heading
    for fixed in itertools.product(*(range(len(axes[i].values)) for i in others)):
        title = " · ".join(f"{axes[i].name}: {axes[i].values[v].label}" for i, v in zip(others, fixed, strict=True))
        if title:
            parts.append(f"<h2>{_esc(title)}</h2>")
        row_values = range(len(axes[rows].values)) if rows is not None else [None]
        column_values = range(len(axes[columns].values)) if columns is not None else [None]
        parts.append('<table class="slice">')
        if columns is not None:
            parts.append("<thead><tr>" + ("<th></th>" if rows is not None else "") + "".join(
                f"<th>{_esc(axes[columns].name)}: {_esc(v.label)}</th>" for v in axes[columns].values)
                + "</tr></thead>")
        parts.append("<tbody>")
        for r in row_values:
            parts.append("<tr>" + (f"<th>{_esc(axes[rows].name)}: {_esc(axes[rows].values[r].label)}</th>"
                                   if rows is not None else ""))
            for c in column_values:
                coords = [0] * len(axes)
                for i, v in zip(others, fixed, strict=True):
                    coords[i] = v
                if rows is not None:
                    coords[rows] = r
                if columns is not None:
                    coords[columns] = c
                parts.append(f"<td>{_figure(plan, journal, by_coords[tuple(coords)], size, captioned, lazy)}</td>")
            parts.append("</tr>")
        parts.append("</tbody></table>")
    if sheets:
        parts.append("<h2>Contact sheets</h2><ul class=\"sheets\">" + "".join(
            f'<li><a href="{_esc(s)}">{_esc(s.removeprefix("sheets/"))}</a></li>' for s in sheets) + "</ul>")
    parts.append("</body></html>")
    path = os.path.join(journal.folder, REPORT)
    write_atomic(path, "\n".join(parts).encode("utf-8"))
    return path


__all__ = ["REPORT", "manifest", "parameters", "write_html"]
