"""``loradeck demo``: run the shipped example workflow on the built-in tiny model."""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
from PIL import Image

from ..runner import Workflow, run_workflow
from .contact_sheet import contact_sheet

log = logging.getLogger(__name__)
PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_WORKFLOW = os.path.join(PACK_DIR, "example_workflows", "loradeck-demo.json")
LABELS = {"0-base": "no LoRA", "1-style-0.5": "disc (style) 0.5", "2-style-1": "disc (style) 1",
          "3-kohya-0.5": "stripes (kohya) 0.5", "4-kohya-1": "stripes (kohya) 1", "5-stack": "both (stack)",
          "6-stack-fused": "both, fused"}


def _label(path: str) -> str:
    stem = os.path.basename(path).rsplit("_", 2)[0]
    return LABELS.get(stem, stem)


def _workflow_for(family_key: str, output_dir: str):
    """The demo graph for another family: its tiny model, and demo LoRAs made for it."""
    from ..core.families import FAMILIES
    from ..runner.workflow_file import load
    from .make_loras import family_loras

    workflow = load(DEMO_WORKFLOW)
    prompt = json.loads(json.dumps(workflow.prompt))
    for node in prompt.values():
        if node["class_type"] == "LoadPipeline|LoRADeck":
            node["inputs"]["model_name"] = f"{FAMILIES[family_key].builtin} (built-in)"
        if node["class_type"] == "SaveImage":
            node["inputs"]["filename_prefix"] = node["inputs"]["filename_prefix"].replace(
                "loradeck-demo/", f"loradeck-demo-{family_key}/")
    models = os.path.join(output_dir, f"loradeck-demo-{family_key}", "models")
    family_loras(family_key, os.path.join(models, "loras"))
    return Workflow(prompt, None, DEMO_WORKFLOW), models


def run_demo(output_dir: str, say=print, family: str = "sd1") -> list[str]:
    started = time.perf_counter()
    say(f"LoRA Deck demo: running {os.path.relpath(DEMO_WORKFLOW)} on the built-in tiny {family} model")
    if family == "sd1":
        context = run_workflow(DEMO_WORKFLOW, output_dir)
    else:
        workflow, models = _workflow_for(family, output_dir)
        context = run_workflow(workflow, output_dir, models)
    saved = sorted(context.saved, key=os.path.basename)
    for path in saved:
        say(f"  wrote {os.path.relpath(path)}  ({_label(path)})")
    sheet = contact_sheet([(_label(p), p) for p in saved],
                          os.path.join(os.path.dirname(saved[0]), "contact_sheet.png"))
    say(f"  wrote {os.path.relpath(sheet)}  (all {len(saved)} side by side)")
    by_label = {_label(p): np.asarray(Image.open(p), dtype=np.int16) for p in saved}
    if {"both (stack)", "both, fused", "no LoRA"} <= by_label.keys():
        lora = np.abs(by_label["both (stack)"] - by_label["no LoRA"]).max()
        fused = np.abs(by_label["both, fused"] - by_label["both (stack)"]).max()
        say(f"  the stack changes the image by up to {lora}/255 per pixel; fused vs unfused differ by {fused}/255")
    say(f"done in {time.perf_counter() - started:.1f}s")
    return [*saved, sheet]
