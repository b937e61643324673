"""Output PNGs carry A1111-style parameters (with Lora hashes) besides ComfyUI's prompt/workflow chunks."""

from __future__ import annotations

import json
import os
import re
from types import SimpleNamespace

from PIL import Image

from helpers import a1111_shorthash
from loradeck.core.stacks.specs import AdapterSpec, StackSpec
from loradeck.runner import Workflow, run_workflow
from loradeck.runner.parameters import a1111_text, for_save_node
from loradeck.runner.workflow_file import from_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = os.path.join(ROOT, "example_workflows", "api", "loradeck-demo.api.json")
DEMO = os.path.join(ROOT, "demo", "models", "loras")
# A1111's own parser for the last line of its parameters text (modules/infotext_utils.py).
A1111_FIELD = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def _a1111(name: str) -> str:
    return a1111_shorthash(os.path.join(DEMO, name))


def _fields(line: str) -> dict[str, str]:
    return {key.strip(): value for key, value in A1111_FIELD.findall(line)}


def _quick_demo() -> Workflow:
    """The demo graph with 3 steps per Generate (the text must say what ran)."""
    with open(API) as f:
        prompt = json.load(f)
    for node in prompt.values():
        if node["class_type"] == "Generate|LoRADeck":
            node["inputs"]["steps"] = 3
    return from_data(prompt, "quick demo")


def test_saved_pngs_credit_the_loras_of_the_generate_that_made_them(tmp_path):
    run = run_workflow(_quick_demo(), str(tmp_path), order=["6", "13"])
    saved = {os.path.basename(p).rsplit("_", 2)[0]: p for p in run.saved}
    fused = Image.open(saved["6-stack-fused"]).text
    prompt, negative, line = fused["parameters"].split("\n")
    assert prompt == "loradeck detail, a lighthouse on a cliff at sunset" and negative == "Negative prompt: blurry"
    fields = _fields(line)
    assert {k: fields[k] for k in ("Steps", "Seed", "CFG scale", "Size")} == {
        "Steps": "3", "Seed": "42", "CFG scale": "7", "Size": "128x128"}
    pairs = dict(item.split(": ") for item in json.loads(fields["Lora hashes"]).split(", "))
    assert pairs == {"loradeck-demo-style": _a1111("loradeck-demo-style.safetensors"),
                     "loradeck-demo-kohya": _a1111("loradeck-demo-kohya.safetensors")}
    assert "fused=1" in json.loads(fields["LoRA Deck"])
    assert json.loads(fused["prompt"])["5"]["class_type"] == "Generate|LoRADeck"  # ComfyUI's chunk is still there
    base = Image.open(saved["0-base"]).text["parameters"]
    assert "Lora hashes" not in base and "Seed: 42" in base


def _adapter(name: str, enabled: bool = True) -> AdapterSpec:
    return AdapterSpec(path=f"/x/{name}.safetensors", sha256="ab" * 32, name=name, enabled=enabled)


def test_parameters_text_quotes_like_a1111():
    stack = StackSpec((_adapter("odd: name, really"), _adapter("off", enabled=False)))
    handle = SimpleNamespace(owner=SimpleNamespace(label="my, model [float16]"), stack=stack)
    inputs = {"pipeline": handle, "prompt": "a cat\nin a hat", "negative_prompt": "", "seed": 7, "steps": 3,
              "cfg": 4.5, "width": 64, "height": 96}
    text = a1111_text(inputs)
    assert text.startswith("a cat\nin a hat\nSteps: 3") and "Negative prompt" not in text
    fields = _fields(text.rsplit("\n", 1)[-1])
    assert fields["Model"] == '"my, model"' and fields["CFG scale"] == "4.5" and fields["Size"] == "64x96"
    assert json.loads(fields["Lora hashes"]) == "odd name really: abababab" + "ab"  # disabled adapter left out


def test_images_not_from_a_generate_node_get_no_parameters():
    prompt = {"1": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}},
              "2": {"class_type": "SomethingElse", "inputs": {}}}
    assert for_save_node(prompt, {"2": {}}, "1") is None
    assert for_save_node(prompt, {}, "missing") is None
