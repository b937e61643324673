"""Writes example_workflows/<name>.jpg: each template's thumbnail, made of the pictures that workflow makes.

    python tools/make_thumbnails.py [NAME ...]      # NAME: an example's name, e.g. loradeck-video (default: all)

ComfyUI shows a custom node pack's example workflows as templates and asks for ``<name>.jpg`` beside each
(a 404 and a grey card otherwise). Each workflow runs headless on the built-in tiny model; up to four of
its saved pictures go into a 2x2 grid (the demo picks no LoRA, each LoRA, and both). Workflows with ComfyUI's own
nodes (loradeck-native: Load Checkpoint, KSampler) run in ComfyUI only: tests/test_comfyui_bridge_live.py saves
their picture as comfyui-native-bridge.png under LORADECK_TEST_OUTPUT, and ``thumbnail([that png], ...)`` makes it.
"""

from __future__ import annotations

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "example_workflows")
CELL = 192
PICKS = {"loradeck-demo": ("0-base", "2-style-1", "4-kohya-1", "5-stack"),  # stems shown, in this order
         "loradeck-grid": ("grid",),  # the labelled grid itself
         "loradeck-video": ("t2v", "i2v")}  # each animated WebP's first frame
PICTURES = (".png", ".webp")  # what the sheet is made of (a video example also writes .mp4)


def _stem(path: str) -> str:
    return os.path.basename(path).rsplit("_", 2)[0]


def thumbnail(saved: list[str], out_path: str, picks: tuple[str, ...] = ()) -> str:
    from PIL import Image

    chosen = sorted((p for p in saved if p.lower().endswith(PICTURES)), key=_stem)
    if picks:
        chosen = [p for stem in picks for p in chosen if _stem(p) == stem]
    chosen = chosen[:4]
    columns = 1 if len(chosen) == 1 else 2
    rows = -(-len(chosen) // columns)
    sheet = Image.new("RGB", (CELL * columns, CELL * rows), "white")
    for i, path in enumerate(chosen):
        image = Image.open(path).convert("RGB").resize((CELL, CELL), Image.NEAREST)
        sheet.paste(image, ((i % columns) * CELL, (i // columns) * CELL))
    sheet.save(out_path, "JPEG", quality=88)
    return out_path


def main(only: tuple[str, ...] = ()) -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    import json

    from loradeck.runner import run_workflow
    from loradeck.runner.registry import CLASSES, VIRTUAL

    for name in sorted(n[: -len(".json")] for n in os.listdir(EXAMPLES) if n.endswith(".json")):
        with open(os.path.join(EXAMPLES, f"{name}.json"), encoding="utf-8") as f:
            types = {n.get("type") for n in json.load(f).get("nodes", [])}
        if types - set(CLASSES) - VIRTUAL:
            print(f"{name}: has ComfyUI's own nodes; its thumbnail comes from a run in ComfyUI")  # noqa: T201
            continue
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory() as out:
            saved = run_workflow(os.path.join(EXAMPLES, f"{name}.json"), out).saved
            print(thumbnail(saved, os.path.join(EXAMPLES, f"{name}.jpg"), PICKS.get(name, ())))  # noqa: T201


if __name__ == "__main__":
    main(tuple(sys.argv[1:]))  # names of examples to redo (default: all)
