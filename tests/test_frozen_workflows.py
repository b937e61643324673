"""Workflows saved with earlier releases keep working: node IDs, input names and widget order are frozen.

tests/workflows/<release>/ holds a copy of every example workflow of that release (UI format, plus its
API-format twin). Never edit those copies; when a release adds or changes an example, add a new folder.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from PIL import Image

from loradeck.runner import Workflow, load, run_workflow
from loradeck.runner.registry import CLASSES, VIRTUAL, input_specs
from loradeck.runner.ui_to_api import ui_to_api
from loradeck.runner.workflow_file import is_api

TESTS = Path(__file__).resolve().parent
FROZEN = TESTS / "workflows"
EXAMPLES = TESTS.parent / "example_workflows"
UI_COPIES = sorted(p for p in FROZEN.glob("*/*.json") if not p.name.endswith(".api.json"))
ALL_COPIES = sorted(FROZEN.glob("*/*.json"))
OUTPUTS = {"SaveImage", "PreviewImage", "SaveImage|LoRADeck", "SaveLoRA|LoRADeck", "SaveAnimatedWEBP"}
OUTPUTS_WITH_PYAV = {"SaveVideo"}  # writes its MP4 only where PyAV is installed (the headless runner says so)
STEPPED = {"Generate|LoRADeck", "LoRAGrid|LoRADeck"}
QUICK_STEPS = 2


def _ids(paths):
    return [f"{p.parent.name}/{p.name}" for p in paths]


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _prompt(path: Path) -> dict:
    data = _read(path)
    return data if is_api(data) else ui_to_api(data)


def test_every_example_workflow_has_a_frozen_copy():
    frozen = {p.name for p in ALL_COPIES}
    missing = sorted(p.name for p in EXAMPLES.rglob("*.json") if p.name not in frozen)
    assert not missing, f"copy {missing} from example_workflows/ to tests/workflows/<release>/ (never edit old copies)"


def test_every_template_has_a_thumbnail():
    """ComfyUI shows example_workflows/<name>.json as a template and asks for <name>.jpg beside it."""
    for path in EXAMPLES.glob("*.json"):
        thumbnail = path.with_suffix(".jpg")
        assert thumbnail.is_file() and thumbnail.read_bytes()[:3] == b"\xff\xd8\xff", thumbnail.name


@pytest.mark.parametrize("path", UI_COPIES, ids=_ids(UI_COPIES))
def test_frozen_ui_workflow_converts_to_its_api_twin(path):
    twin = path.with_name(path.name[: -len(".json")] + ".api.json")
    if not twin.exists():
        pytest.skip(f"{path.name} has no API twin")
    if _comfyui_only(path):
        pytest.skip(f"{path.name} uses ComfyUI's own nodes; ComfyUI converts and runs it (test_comfyui_bridge_live)")
    converted, api = ui_to_api(_read(path)), _read(twin)
    assert {k: v["class_type"] for k, v in converted.items()} == {k: v["class_type"] for k, v in api.items()}
    assert {k: v["inputs"] for k, v in converted.items()} == {k: v["inputs"] for k, v in api.items()}


def _comfyui_only(path: Path) -> bool:
    """A graph with ComfyUI's own nodes (Load Checkpoint, KSampler): ComfyUI runs it (test_comfyui_bridge_live.py)."""
    data = _read(path)
    types = [n["type"] for n in data["nodes"]] if "nodes" in data else [n["class_type"] for n in data.values()]
    return any(t not in CLASSES and t not in VIRTUAL for t in types)


@pytest.mark.parametrize("path", ALL_COPIES, ids=_ids(ALL_COPIES))
def test_frozen_inputs_are_still_declared(path):
    data = _read(path)
    prompt = data if is_api(data) else _read(path.with_name(path.name[: -len(".json")] + ".api.json")) \
        if _comfyui_only(path) else _prompt(path)
    for node_id, node in prompt.items():
        cls = CLASSES.get(node["class_type"])
        if cls is None:  # ComfyUI's own node: ComfyUI keeps its inputs
            continue
        declared, required = input_specs(cls), cls.INPUT_TYPES().get("required", {})
        unknown = sorted(set(node["inputs"]) - set(declared))
        missing = sorted(set(required) - set(node["inputs"]))
        assert not unknown and not missing, f"node {node_id} ({node['class_type']}): {unknown=} {missing=}"


def _quick(workflow: Workflow) -> Workflow:
    """The same graph with Generate (and LoRA Grid) capped at QUICK_STEPS: the graph is what is frozen, not the
    picture."""
    prompt = copy.deepcopy(workflow.prompt)
    for node in prompt.values():
        if node["class_type"] in STEPPED:
            node["inputs"]["steps"] = min(int(node["inputs"]["steps"]), QUICK_STEPS)
    return Workflow(prompt, workflow.ui, workflow.source)


@pytest.mark.parametrize("path", UI_COPIES, ids=_ids(UI_COPIES))
def test_frozen_workflow_runs(path, tmp_path):
    if _comfyui_only(path):
        pytest.skip(f"{path.name} uses ComfyUI's own nodes; ComfyUI runs it (test_comfyui_bridge_live)")
    from loradeck.runner.video_nodes import have_av

    workflow = load(str(path))
    writers = OUTPUTS | (OUTPUTS_WITH_PYAV if have_av() else set())
    outputs = [n for n in workflow.ui["nodes"] if n["type"] in writers and n.get("mode", 0) == 0]
    context = run_workflow(_quick(workflow), str(tmp_path))
    # one file name stem per output node (a node saving a batch, e.g. a grid's cells, writes several files)
    assert len({saved.rsplit('_', 2)[0] for saved in context.saved}) == len(outputs)
    for saved in (p for p in context.saved if p.endswith(".png")):
        text = Image.open(saved).text
        assert {"prompt", "workflow", "parameters"} <= set(text), saved
