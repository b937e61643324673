"""Save Image (LoRA Deck), headless: ComfyUI's naming and chunks plus A1111 parameters that a civitai-style
reader parses, listing each LoRA with its hash (the live ComfyUI check is in test_comfyui_live.py)."""

from __future__ import annotations

import json
import os

import a1111_parser
from PIL import Image

from helpers import a1111_shorthash
from loradeck.runner import run_workflow
from loradeck.runner.workflow_file import from_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "demo", "models", "loras")
STYLE, KOHYA = "loradeck-demo-style", "loradeck-demo-kohya"


def _a1111(name: str) -> str:
    """The hash A1111 / Forge write and look up for a demo LoRA (helpers.a1111_shorthash)."""
    return a1111_shorthash(os.path.join(DEMO, f"{name}.safetensors"))


def _workflow(weights: str = f"{STYLE}: model=0.8, clip=0.5") -> dict:
    generate = {"prompt": f"a lighthouse <lora:{KOHYA}:0.7>, sunset", "negative_prompt": "blurry, fog", "seed": 42,
                "steps": 3, "cfg": 6.5, "width": 64, "height": 64, "batch_size": 2, "scheduler": "Euler a",
                "denoise": 1.0, "pipeline": ["3", 0]}
    return {
        "1": {"class_type": "LoadPipeline|LoRADeck", "inputs": {"model_name": "tiny-sd (built-in)", "dtype": "auto"}},
        "2": {"class_type": "LoadLoRA|LoRADeck", "inputs": {"lora_name": f"{STYLE}.safetensors",
                                                            "strength_model": 1.0, "strength_clip": 1.0,
                                                            "pipeline": ["1", 0]}},
        "3": {"class_type": "SetAdapterWeights|LoRADeck", "inputs": {"weights": weights, "pipeline": ["2", 0]}},
        "4": {"class_type": "Generate|LoRADeck", "inputs": generate},
        "5": {"class_type": "SaveImage|LoRADeck", "inputs": {"images": ["4", 0], "filename_prefix": "deck/tagged"}},
    }


def test_headless_save_image_parses_as_civitai_reads_it(tmp_path):
    run = run_workflow(from_data(_workflow(), "save image"), str(tmp_path))
    assert [os.path.relpath(p, tmp_path) for p in run.saved] == [
        os.path.join("deck", "tagged_00001_.png"), os.path.join("deck", "tagged_00002_.png")]  # ComfyUI's naming
    chunks = Image.open(run.saved[0]).text
    assert json.loads(chunks["prompt"])["5"]["class_type"] == "SaveImage|LoRADeck"  # ComfyUI's own chunk
    meta = a1111_parser.parse(chunks["parameters"])
    assert meta["prompt"] == f"a lighthouse <lora:{KOHYA}:0.7>, sunset"  # tags kept, as A1111 writes them
    assert meta["negativePrompt"] == "blurry, fog"
    assert (meta["steps"], meta["sampler"], meta["seed"], meta["cfgScale"], meta["width"], meta["height"]) == (
        3, "Euler a", 42, 6.5, 64, 64)
    assert meta["Model"] == "tiny-sd (built-in)"
    loras = {r["name"]: r for r in meta["resources"] if r["type"] == "lora"}
    assert {name: r["hash"] for name, r in loras.items()} == {STYLE: _a1111(STYLE), KOHYA: _a1111(KOHYA)}
    assert loras[KOHYA]["weight"] == 0.7
    assert f"{STYLE}: clip=0.5 model=0.8" in meta["LoRA Deck"]
    second = a1111_parser.parse(Image.open(run.saved[1]).text["parameters"])
    assert second["seed"] == 42 and {r["name"] for r in second["resources"]} == {STYLE, KOHYA, "tiny-sd (built-in)"}


def test_a_strength_schedule_is_written_in_the_parameters(tmp_path):
    run = run_workflow(from_data(_workflow(f"{STYLE}: model=ramp(1, 0.2), clip=0.5"), "schedule"), str(tmp_path))
    meta = a1111_parser.parse(Image.open(run.saved[0]).text["parameters"])
    assert f"{STYLE}: clip=0.5 model=[ramp(1, 0.2)]" in meta["LoRA Deck"]
    assert {r["name"] for r in meta["resources"] if r["type"] == "lora"} == {STYLE, KOHYA}
