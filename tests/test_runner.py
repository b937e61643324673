"""The headless runner: UI and API formats, PNG round trip, virtual/muted/bypassed nodes, errors."""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest
from PIL import Image

from loradeck.cli import main as cli_main
from loradeck.runner import WorkflowError, load, run_workflow
from loradeck.runner.ui_to_api import ui_to_api
from loradeck.runner.workflow_file import from_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UI = os.path.join(ROOT, "example_workflows", "loradeck-demo.json")
API = os.path.join(ROOT, "example_workflows", "api", "loradeck-demo.api.json")


def _pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path))


def _by_prefix(paths) -> dict[str, str]:
    return {os.path.basename(p).rsplit("_", 2)[0]: p for p in paths}


@pytest.fixture(scope="module")
def ui_run(tmp_path_factory):
    return run_workflow(UI, str(tmp_path_factory.mktemp("ui")))


def test_ui_and_api_files_give_the_same_images(ui_run, tmp_path):
    api_run = run_workflow(API, str(tmp_path))
    ui, api = _by_prefix(ui_run.saved), _by_prefix(api_run.saved)
    assert set(ui) == {"0-base", "1-style-0.5", "2-style-1", "3-kohya-0.5", "4-kohya-1", "5-stack",
                       "6-stack-fused"} == set(api)
    for name in ui:
        assert np.array_equal(_pixels(ui[name]), _pixels(api[name])), name
    assert not np.array_equal(_pixels(ui["0-base"]), _pixels(ui["5-stack"]))


EXAMPLES = sorted(n[:-5] for n in os.listdir(os.path.join(ROOT, "example_workflows")) if n.endswith(".json"))


def comfyui_only(workflow: dict) -> bool:
    """A graph with ComfyUI's own nodes (Load Checkpoint, KSampler, ...): it runs in ComfyUI, not headless."""
    from loradeck.runner.registry import CLASSES, VIRTUAL

    types = [n.get("type") for n in workflow["nodes"]] if "nodes" in workflow else \
        [n.get("class_type") for n in workflow.values()]
    return any(t not in CLASSES and t not in VIRTUAL for t in types)


@pytest.mark.parametrize("name", EXAMPLES)
def test_ui_conversion_matches_the_api_twin(name):
    folder = os.path.join(ROOT, "example_workflows")
    with open(os.path.join(folder, f"{name}.json")) as f, open(os.path.join(folder, "api", f"{name}.api.json")) as g:
        ui, api = json.load(f), json.load(g)
    assert len(EXAMPLES) >= 4
    if comfyui_only(ui):  # the runner cannot convert ComfyUI's own nodes; ComfyUI runs this one (live test)
        ours = {str(n["id"]): n for n in ui["nodes"] if n["type"] in api.get(str(n["id"]), {}).get("class_type", "")}
        assert {k: v["class_type"] for k, v in api.items()} == {k: n["type"] for k, n in ours.items()}
        for key, node in ours.items():
            widgets = [v for k, v in api[key]["inputs"].items() if not isinstance(v, list)]
            assert [v for v in node["widgets_values"] if v != "fixed"] == widgets, key
        return
    converted = ui_to_api(ui)
    assert {k: v["inputs"] for k, v in converted.items()} == {k: v["inputs"] for k, v in api.items()}


def test_output_png_carries_the_graph_and_reruns_to_the_same_pixels(ui_run, tmp_path):
    fused = _by_prefix(ui_run.saved)["6-stack-fused"]
    text = Image.open(fused).text
    assert json.loads(text["workflow"])["nodes"] and json.loads(text["prompt"])["5"]["class_type"]
    rerun = run_workflow(fused, str(tmp_path))
    again = _by_prefix(rerun.saved)["6-stack-fused"]
    assert np.array_equal(_pixels(fused), _pixels(again))


def test_save_image_naming_counts_up(ui_run, tmp_path):
    first = run_workflow(API, str(tmp_path)).saved
    second = run_workflow(API, str(tmp_path)).saved
    assert any(p.endswith("0-base_00001_.png") for p in first)
    assert any(p.endswith("0-base_00002_.png") for p in second)


def _ui():
    with open(UI) as f:
        return json.load(f)


def _node(workflow, node_id):
    return next(n for n in workflow["nodes"] if n["id"] == node_id)


def test_reroute_primitive_bypass_and_mute():
    wf = _ui()
    base = ui_to_api(copy.deepcopy(wf))
    # A Reroute between LoadPipeline (1) and the base Generate (12).
    link = next(ln for ln in wf["links"] if ln[1] == 1 and ln[3] == 12)
    wf["nodes"].append({"id": 50, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 900}],
                        "outputs": [{"name": "", "type": "LORADECK_PIPELINE", "links": [link[0]]}]})
    wf["links"].append([900, 1, 0, 50, 0, "*"])
    link[1], link[2] = 50, 0
    # A PrimitiveNode feeding Generate 12's seed.
    wf["nodes"].append({"id": 51, "type": "PrimitiveNode", "mode": 0, "inputs": [],
                        "outputs": [{"name": "INT", "type": "INT", "links": [901], "widget": {"name": "seed"}}],
                        "widgets_values": [777, "fixed"]})
    wf["links"].append([901, 51, 0, 12, 9, "INT"])
    _node(wf, 12)["inputs"].append({"name": "seed", "type": "INT", "link": 901, "widget": {"name": "seed"}})
    # Bypass the fuse node (4): Generate 5 then takes SetAdapterWeights' output directly.
    _node(wf, 4)["mode"] = 4
    # Mute the one-LoRA branch's SaveImage (11).
    _node(wf, 11)["mode"] = 2
    api = ui_to_api(wf)
    assert api["12"]["inputs"]["pipeline"] == ["1", 0] and api["12"]["inputs"]["seed"] == 777
    assert api["5"]["inputs"]["pipeline"] == ["3", 0]
    assert "4" not in api and "11" not in api and "50" not in api and "51" not in api
    assert api["7"] == base["7"]


def test_unsupported_nodes_are_listed_in_one_error(tmp_path):
    wf = _ui()
    wf["nodes"].append({"id": 60, "type": "KSampler", "mode": 0, "inputs": [], "outputs": []})
    wf["nodes"].append({"id": 61, "type": "CheckpointLoaderSimple", "mode": 0, "inputs": [], "outputs": []})
    wf["nodes"].append({"id": 62, "type": "KSampler", "mode": 2, "inputs": [], "outputs": []})  # muted: ignored
    with pytest.raises(WorkflowError) as info:
        run_workflow(from_data(wf, "test"), str(tmp_path))
    unknown = [line for line in str(info.value).splitlines() if "cannot run headless" in line]
    assert unknown == ["  node 60 (KSampler, 'KSampler'): this node type cannot run headless", "  node 61 "
                       "(CheckpointLoaderSimple, 'CheckpointLoaderSimple'): this node type cannot run headless"]
    assert "LoadImage, SaveImage, PreviewImage, SaveAnimatedWEBP, CreateVideo and SaveVideo" in str(info.value)
    assert not os.listdir(tmp_path)


def test_muted_upstream_node_gives_a_clear_error(tmp_path):
    wf = _ui()
    _node(wf, 9)["mode"] = 2  # LoadLoRA muted: Generate 10 loses its pipeline
    with pytest.raises(WorkflowError, match="node 10 .*pipeline: required input is missing"):
        run_workflow(from_data(wf, "test"), str(tmp_path), order=["11"])


def test_not_a_workflow(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(WorkflowError, match="neither an API-format nor a UI-format"):
        load(str(bad))


def test_bad_lora_name_names_the_node(tmp_path):
    with open(API) as f:
        api = json.load(f)
    api["9"]["inputs"]["lora_name"] = "missing.safetensors"
    with pytest.raises(WorkflowError, match=r"node 9 \(LoadLoRA\|LoRADeck, 'Kohya LoRA alone'\): lora_name: .*found"):
        run_workflow(from_data(api, "test"), str(tmp_path), order=["11"])


def test_cli_demo_writes_images_and_a_contact_sheet(tmp_path, capsys):
    assert cli_main(["demo", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "contact_sheet.png" in out and "fused and unfused images differ by" in out and "bit for bit" in out
    assert os.path.isfile(tmp_path / "loradeck-demo" / "contact_sheet.png")


def test_cli_reports_errors_without_a_traceback(tmp_path, caplog):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    assert cli_main(["run", str(tmp_path / "x.json")]) == 1
    assert "neither an API-format nor a UI-format" in caplog.text


def test_family_demo_pngs_rerun_without_a_models_dir(tmp_path, monkeypatch):
    """The family demo writes its LoRAs where the runner looks by default, so its PNGs run again as they are."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LORADECK_MODELS_DIR", raising=False)
    from loradeck.demo import run as demo

    workflow, loras = demo._workflow_for("sd3")
    assert loras == [str(tmp_path / "models" / "loras" / "loradeck-demo-sd3" / n)
                     for n in ("loradeck-demo-style.safetensors", "loradeck-demo-kohya.safetensors")]
    for node in workflow.prompt.values():
        node["inputs"].update({k: 2 for k in ("steps",) if k in node["inputs"]})
        node["inputs"].update({k: 64 for k in ("width", "height") if k in node["inputs"]})
    fused = _by_prefix(run_workflow(workflow, "output", order=["6"]).saved)["6-stack-fused"]
    again = _by_prefix(run_workflow(fused, "again").saved)["6-stack-fused"]
    assert np.array_equal(_pixels(fused), _pixels(again))
