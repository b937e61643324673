"""The runner checks the whole workflow before it runs anything and names every problem, one line each."""

from __future__ import annotations

import copy
import json
import os

import pytest

from loradeck.nodes.common import MAX_SEED
from loradeck.runner import WorkflowError, run_workflow
from loradeck.runner.validate import widget_value
from loradeck.runner.workflow_file import from_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = os.path.join(ROOT, "example_workflows", "api", "loradeck-demo.api.json")
UI = os.path.join(ROOT, "example_workflows", "loradeck-demo.json")


def _load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _problems(data, tmp_path) -> list[str]:
    """The problem lines of the WorkflowError, after checking that nothing was written."""
    out = tmp_path / "out"
    with pytest.raises(WorkflowError) as info:
        run_workflow(from_data(data, "test"), str(out))
    head, *lines = str(info.value).splitlines()
    assert "nothing was run" in head
    assert not [f for _, _, files in os.walk(out) for f in files]
    return [line.strip() for line in lines]


def test_a_missing_lora_in_one_branch_writes_nothing_and_every_problem_is_named(tmp_path):
    api = _load(API)
    api["9"]["inputs"]["lora_name"] = "missing.safetensors"  # the one-LoRA branch
    api["2"]["inputs"]["lora_name_2"] = "elsewhere/also-missing.safetensors"  # the stack
    api["12"]["inputs"]["steps"] = 5000  # the no-LoRA branch
    lines = _problems(api, tmp_path)
    assert len(lines) == 3, lines
    assert any(line.startswith("node 9 (LoadLoRA|LoRADeck, 'Kohya LoRA alone'): lora_name: LoRA file "
                               "'missing.safetensors'") for line in lines), lines
    assert any(line.startswith("node 2 (StackLoRA|LoRADeck, 'Stack two demo LoRAs'): lora_name_2: LoRA file "
                               "'elsewhere/also-missing.safetensors'") for line in lines), lines
    assert "node 12 (Generate|LoRADeck, 'Generate (no LoRA)'): steps = 5000: above the maximum 1000" in lines


def _set(node: str, **inputs):
    return lambda api: api[node]["inputs"].update(inputs)


def _drop(node: str, name: str):
    return lambda api: api[node]["inputs"].pop(name)


def _add(node: str, value):
    return lambda api: api.update({node: value})


BROKEN = {
    "link to a missing node": (_set("7", pipeline=["99", 0]),
                               "node 7 (Generate|LoRADeck, 'Generate (unfused)'): pipeline: linked to node 99, "
                               "which does not exist"),
    "output slot out of range": (_set("13", images=["12", 5]),
                                 "node 13 (SaveImage, 'Save base'): images: linked to output 5 of node 12 "
                                 "(Generate|LoRADeck, 'Generate (no LoRA)'), which has 2 output(s)"),
    "link of the wrong type": (_set("12", pipeline=["9", 1]),
                               "node 12 (Generate|LoRADeck, 'Generate (no LoRA)'): pipeline: needs LORADECK_PIPELINE, "
                               "but output 1 of node 9 (LoadLoRA|LoRADeck, 'Kohya LoRA alone') is STRING"),
    "a cycle": (_set("3", pipeline=["4", 0]),
                "node 4 (FuseLoRA|LoRADeck, 'Fuse both'): part of a cycle (4 -> 3 -> 4); links must flow one way"),
    "required input missing": (_drop("12", "pipeline"),
                               "node 12 (Generate|LoRADeck, 'Generate (no LoRA)'): pipeline: required input is "
                               "missing or not connected (a muted node upstream?)"),
    "a value where a link belongs": (_set("12", pipeline="tiny"),
                                     "node 12 (Generate|LoRADeck, 'Generate (no LoRA)'): pipeline: needs a link from "
                                     "a LORADECK_PIPELINE output, got 'tiny'"),
    "not a whole number": (_set("12", seed="abc"),
                           "node 12 (Generate|LoRADeck, 'Generate (no LoRA)'): seed = 'abc': not a whole number"),
    "not a finite number": (_set("5", cfg=float("nan")),
                            "node 5 (Generate|LoRADeck, 'Generate (fused)'): cfg = nan: not a finite number"),
    "below the minimum": (_set("5", width=8),
                          "node 5 (Generate|LoRADeck, 'Generate (fused)'): width = 8: below the minimum 64"),
    "not a boolean": (_set("4", safe_fusing="yes"),
                      "node 4 (FuseLoRA|LoRADeck, 'Fuse both'): safe_fusing = 'yes': not true or false"),
    "not one of the choices": (_set("1", model_name="my-model"),
                               "node 1 (LoadPipeline|LoRADeck, 'Tiny SD (built-in)'): model_name = 'my-model': "
                               "not one of the choices ("),
    "unknown node type": (_add("60", {"class_type": "KSampler", "inputs": {}, "_meta": {"title": "KSampler"}}),
                          "node 60 (KSampler, 'KSampler'): this node type cannot run headless"),
    "not a node": (_add("61", ["junk"]), 'node 61: not a node (expected {"class_type": ..., "inputs": {...}})'),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_problem_is_one_line_naming_node_and_input(case, tmp_path):
    change, expected = BROKEN[case]
    api = _load(API)
    change(api)
    lines = _problems(api, tmp_path)
    assert any(line.startswith(expected) for line in lines), lines


def test_all_problems_come_in_one_report(tmp_path):
    together = [c for c in BROKEN if c not in ("link of the wrong type", "required input missing")]  # same input
    api = _load(API)
    for case in together:
        BROKEN[case][0](api)
    lines = _problems(api, tmp_path)
    for case in together:
        assert any(line.startswith(BROKEN[case][1]) for line in lines), (case, lines)
    assert len(lines) == len(together) + 1  # and the one hint about which nodes run headless


def test_malformed_ui_nodes_and_links_are_listed_with_the_rest(tmp_path):
    ui = _load(UI)
    broken = copy.deepcopy(ui)
    del broken["nodes"][0]["id"]
    del broken["nodes"][1]["type"]
    broken["nodes"].append(copy.deepcopy(broken["nodes"][3]))  # the same id twice
    broken["links"] += [[1, 2], "x", {"id": "7"}]
    lines = _problems(broken, tmp_path)
    for expected in ("nodes[0] (LoadPipeline|LoRADeck) has no valid 'id'", "nodes[1] (id 2) has no 'type'",
                     f"nodes[{len(ui['nodes'])}] (id {ui['nodes'][3]['id']}): another node has the same id",
                     f"links[{len(ui['links'])}]: not [id, from node, from slot, to node, to slot, type]: [1, 2]",
                     f"links[{len(ui['links']) + 1}]: not [id, from node, from slot, to node, to slot, type]: 'x'",
                     "node 9 (LoadLoRA|LoRADeck, 'Kohya LoRA alone'): pipeline: linked to node 1, "
                     "which does not exist"):
        assert expected in lines, (expected, lines)


@pytest.mark.parametrize(("spec", "value", "expected"), [
    (("INT", {"min": 0, "max": MAX_SEED}), MAX_SEED, (MAX_SEED, None)),  # never through a float
    (("INT", {}), "42", (42, None)),
    (("INT", {}), 3.0, (3, None)),
    (("INT", {}), 3.5, (3.5, "not a whole number")),
    (("INT", {}), True, (True, "not a whole number")),
    (("FLOAT", {"max": 10.0}), "2.5", (2.5, None)),
    (("FLOAT", {"max": 10.0}), 11, (11.0, "above the maximum 10.0")),
    (("STRING", {}), 7, ("7", None)),
    (("STRING", {}), {"a": 1}, ({"a": 1}, "not text")),
    ((["a", "b"],), "c", ("c", "not one of the choices ('a', 'b')")),
])
def test_widget_values_are_cast_and_checked(spec, value, expected):
    assert widget_value(spec, value, False) == expected


def test_a_node_that_checks_its_own_choices_is_asked_instead():
    assert widget_value((["a.safetensors"],), "elsewhere/a.safetensors", True) == ("elsewhere/a.safetensors", None)


def test_a_missing_input_image_is_reported_before_anything_runs(tmp_path):
    api = _load(os.path.join(ROOT, "example_workflows", "api", "loradeck-img2img.api.json"))
    api["3"]["inputs"]["image"] = "holiday.png"
    api["4"]["inputs"]["denoise"] = 1.5
    lines = _problems(api, tmp_path)
    assert len(lines) == 2, lines
    assert any(line.startswith("node 3 (LoadImage, 'Load Image (transparent sky = mask)'): image: image "
                               "'holiday.png' was not found in ") for line in lines), lines
    assert any("(Generate|LoRADeck, 'Generate (img2img, denoise 0.6)'): denoise = 1.5: above the maximum 1.0" in line
               for line in lines), lines
