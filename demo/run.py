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


def _shown(path: str) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _label(path: str) -> str:
    stem = os.path.basename(path).rsplit("_", 2)[0]
    return LABELS.get(stem, stem)


def _workflow_for(family_key: str) -> tuple[Workflow, list[str]]:
    """The demo graph for another family: its tiny model, and demo LoRAs made for it.

    The LoRAs go under ``loras/loradeck-demo-<family>/`` of the runner's default models folder
    ($LORADECK_MODELS_DIR or ./models), so ``loradeck run`` finds them again for the PNGs it wrote.
    """
    from ..core.families import FAMILIES
    from ..core.settings import Settings
    from ..runner.workflow_file import load
    from .make_loras import KOHYA, STYLE, family_loras

    subfolder = f"loradeck-demo-{family_key}"
    folder = os.path.abspath(os.path.join(Settings.from_env().models_dir, "loras", subfolder))
    loras = family_loras(family_key, folder)
    prompt = json.loads(json.dumps(load(DEMO_WORKFLOW).prompt))
    for node in prompt.values():
        inputs = node["inputs"]
        inputs.update({k: f"{subfolder}/{v}" for k, v in inputs.items() if v in (STYLE, KOHYA)})
        if node["class_type"] == "LoadPipeline|LoRADeck":
            inputs["model_name"] = f"{FAMILIES[family_key].builtin} (built-in)"
        if node["class_type"] == "Generate|LoRADeck" and FAMILIES[family_key].frames:
            inputs["num_frames"] = 1  # a video family's demo compares stills (its video example: loradeck-video)
        if node["class_type"] == "SaveImage":
            inputs["filename_prefix"] = inputs["filename_prefix"].replace("loradeck-demo/", f"{subfolder}/")
    return Workflow(prompt, None, DEMO_WORKFLOW), loras


def run_demo(output_dir: str, say=print, family: str = "sd1") -> list[str]:
    """Run the demo graph; says (and returns) every file it wrote."""
    started = time.perf_counter()
    say(f"LoRA Deck demo: running {_shown(DEMO_WORKFLOW)} on the built-in tiny {family} model")
    workflow, loras = (DEMO_WORKFLOW, []) if family == "sd1" else _workflow_for(family)
    for path in loras:
        say(f"  wrote {_shown(path)}  (demo LoRA for the tiny {family} model)")
    saved = sorted(run_workflow(workflow, output_dir).saved, key=os.path.basename)
    for path in saved:
        say(f"  wrote {_shown(path)}  ({_label(path)})")
    sheet = contact_sheet([(_label(p), p) for p in saved],
                          os.path.join(os.path.dirname(saved[0]), "contact_sheet.png"))
    say(f"  wrote {_shown(sheet)}  (all {len(saved)} side by side)")
    by_label = {_label(p): np.asarray(Image.open(p), dtype=np.int16) for p in saved}
    if {"both (stack)", "both, fused", "no LoRA"} <= by_label.keys():
        lora = np.abs(by_label["both (stack)"] - by_label["no LoRA"]).max()
        fused = np.abs(by_label["both, fused"] - by_label["both (stack)"]).max()
        say(f"  the stack changes the image by up to {lora}/255 per pixel; fused and unfused images differ by "
            f"{fused}/255 (within rounding: fusing reorders float sums; unfuse restores the weights bit for bit)")
    say(f"done in {time.perf_counter() - started:.1f}s")
    return [*loras, *saved, sheet]
