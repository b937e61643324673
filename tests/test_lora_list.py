"""LoRA List: rows as JSON in one widget — parsed strictly, saved and converted like any widget value, run
headless, and resolved like Load LoRA (each row's recorded hash finds its file under another name)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import make_pipe
from loradeck.core import Deck, SpecError
from loradeck.core.api import PipelineHandle
from loradeck.nodes import NODE_CLASS_MAPPINGS
from loradeck.nodes.lora_list import Row, parse_rows, rows_text
from loradeck.runner import run_workflow
from loradeck.runner.registry import widget_names
from loradeck.runner.ui_to_api import ui_to_api
from loradeck.runner.workflow_file import from_data

LIST = NODE_CLASS_MAPPINGS["LoRAList|LoRADeck"]
TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_rows_round_trip_and_defaults():
    rows = parse_rows('[{"lora_name": "a.safetensors"}, {"enabled": false, "lora_name": "b.safetensors", '
                      '"strength_model": 0.5, "sha256": "' + "AB" * 32 + '"}]')
    assert rows == [Row(True, "a.safetensors", 1.0, 1.0, ""), Row(False, "b.safetensors", 0.5, 0.5, "ab" * 32)]
    assert parse_rows(rows_text(rows)) == rows and parse_rows("") == [] and parse_rows("[]") == []
    assert parse_rows('[{"lora_name": "", "enabled": false}]') == [Row(False, "")]  # added, not picked yet, off


@pytest.mark.parametrize("text,message", [
    ("{", "not valid JSON"), ('{"a": 1}', "a list"), ("[1]", "row 1: expected an object"),
    ('[{"lora_name": ""}]', "row 1: no LoRA file chosen; pick one in the row"),
    ('[{"lora_name": "a"}, {"lora_name": 3}]', "row 2: lora_name"),
    ('[{"lora_name": "a", "enabled": "yes"}]', "row 1: enabled"),
    ('[{"lora_name": "a", "strength_model": "x"}]', "row 1, strength_model"),
    ('[{"lora_name": "a", "strength_clip": 1e9}]', "row 1, strength_clip"),
    (json.dumps([{"lora_name": "a"}] * 201), "at most 200 rows"),
])
def test_malformed_rows_are_refused_naming_the_row(text, message):
    with pytest.raises(SpecError, match=message):
        parse_rows(text)


@pytest.fixture
def env(lora_dir, use_models):
    use_models(str(lora_dir))
    return PipelineHandle(Deck(make_pipe()).owner)


def test_rows_are_added_in_order_with_strengths_and_switches(env, files):
    rows = [{"lora_name": "a.safetensors", "strength_model": 0.5, "strength_clip": 0.25},
            {"enabled": False, "lora_name": "k.safetensors"}, {"lora_name": "sub\\b.safetensors"}]
    out = LIST().add(env, json.dumps(rows), lora_stack=[("k.safetensors", 0.3, 0.2)])
    pipeline, stack_out, words = out["result"]
    assert pipeline.stack.names == ("k", "a", "b") and words == ""
    assert stack_out == [("k.safetensors", 0.3, 0.2), ("a.safetensors", 0.5, 0.25), ("sub\\b.safetensors", 1.0, 1.0)]
    assert pipeline.stack.get("a").weight_map == {"model": 0.5, "clip": 0.25}
    assert [m["sha256"] for m in out["ui"]["loradeck_models"]] == [_sha(files[k]) for k in ("k", "a", "b")]
    assert [lora["name"] for lora in out["ui"]["loradeck_loras"]] == ["k.safetensors", "a.safetensors",
                                                                      "sub/b.safetensors"]


def test_queue_time_check_finds_rows_by_hash_and_reports_every_bad_row_once(env, files):
    moved = [{"lora_name": "friend/renamed.safetensors", "sha256": _sha(files["b"])}]
    assert LIST.VALIDATE_INPUTS(json.dumps(moved)) is True
    assert LIST().add(env, json.dumps(moved))["result"][0].stack.names == ("b",)
    bad = [{"lora_name": "nope.safetensors"}, {"lora_name": "a.safetensors"}, {"lora_name": "gone/x.safetensors"},
           {"enabled": False, "lora_name": "off.safetensors"}]
    message = LIST.VALIDATE_INPUTS(json.dumps(bad))
    assert message.count("row 1: ") == 1 and message.count("row 3: ") == 1 and "row 2" not in message
    assert "row 4" not in message and ".." not in message  # a row that is off is not looked for
    assert LIST.VALIDATE_INPUTS("[{") .startswith("loras is not valid JSON")


def _graph(loras_text: str) -> dict:
    sys.path.insert(0, str(TOOLS))
    import make_example_workflows as examples

    gen = dict(examples.GEN, steps=2, width=64, height=64)
    graph = {1: ("LoadPipeline|LoRADeck", "Tiny", {"model_name": "tiny-sd (built-in)", "dtype": "auto"}, {}, (0, 0)),
             2: ("LoRAList|LoRADeck", "List", {"loras": loras_text}, {"pipeline": (1, 0)}, (300, 0)),
             3: ("Generate|LoRADeck", "Gen", gen, {"pipeline": (2, 0)}, (600, 0)),
             4: ("SaveImage", "Save", {"filename_prefix": "list/out"}, {"images": (3, 0)}, (900, 0))}
    return examples.to_ui(graph, "LoRA List test")


def test_ui_workflow_converts_and_runs_headless(tmp_path, lora_dir, files):
    """The rows survive as the node's one widget value: UI -> API conversion, a headless run, the saved PNG."""
    rows = [{"lora_name": "a.safetensors", "strength_model": 0.8, "strength_clip": 0.5},
            {"lora_name": "C:\\\\elsewhere\\\\renamed.safetensors", "sha256": _sha(files["k"])},
            {"enabled": False, "lora_name": "sub/b.safetensors"}]
    ui = _graph(json.dumps(rows))
    assert widget_names(LIST) == ["loras"] and ui["nodes"][1]["widgets_values"] == [json.dumps(rows)]
    assert ui_to_api(ui)["2"]["inputs"] == {"loras": json.dumps(rows), "pipeline": ["1", 0]}
    context = run_workflow(from_data(ui, "list"), str(tmp_path / "out"), str(lora_dir))
    (saved,) = context.saved
    assert json.loads(Image.open(saved).text["workflow"])["nodes"][1]["widgets_values"] == [json.dumps(rows)]
    deck = Deck(make_pipe()).add(files["a"], name="a", model=0.8, clip=0.5).add(files["k"], name="k")
    expected = deck.pipe("loradeck detail, a lighthouse on a cliff at sunset", negative_prompt="blurry",
                         num_inference_steps=2, guidance_scale=7.0, width=64, height=64, output_type="np",
                         generator=__import__("torch").Generator("cpu").manual_seed(42)).images[0]
    assert np.abs(np.asarray(Image.open(saved), dtype=np.int16) - np.round(expected * 255)).max() <= 1
