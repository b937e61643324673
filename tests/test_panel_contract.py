"""The contract between the browser code and the server: every field web/*.js reads from an answer exists in what
Python sends. The JS names what it reads by a fixed variable per kind of object (``snapshot.label``,
``adapter?.blocks``, ``meta.title``); this test finds those reads in the source and checks each against answers
built from real state: a pipeline with an active, a disabled, a fused and a block-weighted adapter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import make_pipe
from loradeck.core import Deck
from loradeck.core.api import PipelineHandle
from loradeck.nodes import NODE_CLASS_MAPPINGS, routes

WEB = Path(__file__).resolve().parents[1] / "web"
KINDS = "payload|pipeline|snapshot|adapter|report|meta|answer|info|lora|message"
READ = re.compile(rf"(?<![.\w])({KINDS})\??\.([A-Za-z_]\w*)")
JS_ONLY = {"length", "map", "filter", "slice", "split", "startsWith", "find"}  # methods, not fields


def js_reads() -> dict[str, set[str]]:
    """variable kind -> the field names the browser code reads from it."""
    found: dict[str, set[str]] = {}
    for path in WEB.glob("*.js"):
        for kind, field in READ.findall(path.read_text(encoding="utf-8")):
            if field not in JS_ONLY:
                found.setdefault(kind, set()).add(field)
    return found


def _keys(dicts) -> set[str]:
    return {k for d in dicts for k in d}


@pytest.fixture(scope="module")
def answers(lora_dir, files, tmp_path_factory):
    """Real answers of every route and node the browser reads, from one pipeline in every adapter state."""
    from helpers import runtime_for
    from loradeck.nodes import host

    runtime = runtime_for(str(lora_dir))
    with host.using(runtime):
        deck = Deck(make_pipe(), label="contract", runtime=runtime)
        deck.add(files["a"], name="on", model=0.8, clip=0.5).add(files["k"], name="off")
        deck.add(files["b"], name="baked").set_weights("off", enabled=False)
        deck.set_weights("on", blocks={"down": 0.5, "up": [0.2, 0.4, 0.6]}).fuse(names=["baked"])
        runtime.pipelines._owners[("contract", "auto")] = deck.owner  # as Load Diffusers Pipeline registers it
        payload = json.loads(routes.snapshot_body(runtime))  # the route's own answer, as the browser gets it
        locate = lambda name, hashes: host.locate_lora(name, hashes, runtime)  # noqa: E731
        answer = routes.resolve_answer(locate, "elsewhere/k.safetensors", [])
        info = {**routes.lora_answer(runtime, locate, "k.safetensors", [])[1],
                **routes.lora_answer(runtime, locate, "nowhere.safetensors", [])[1]}  # found, and not found
        ui = NODE_CLASS_MAPPINGS["LoadLoRA|LoRADeck"]().load(PipelineHandle(deck.owner), "k.safetensors", 1, 1)["ui"]
    pipelines = payload["pipelines"]
    snapshots = [b for p in pipelines for b in p["branches"]] + payload["recent"]
    adapters = [a for s in snapshots for a in s["adapters"]]
    return {"payload": {*payload}, "pipeline": _keys(pipelines), "snapshot": _keys(snapshots),
            "adapter": _keys(adapters), "report": _keys(a["report"] for a in adapters),
            "meta": _keys(a["report"]["metadata"] for a in adapters), "answer": {*answer},
            "info": {*info}, "lora": {*info} | _keys(ui["loradeck_loras"]) | {"found"}, "message": {*ui}}


def test_the_browser_reads_only_fields_the_server_sends(answers):
    reads = js_reads()
    assert set(reads) >= {"payload", "pipeline", "snapshot", "adapter", "report", "meta", "answer", "info", "lora"}
    missing = {kind: sorted(fields - answers[kind]) for kind, fields in reads.items() if fields - answers[kind]}
    assert not missing, f"web/*.js reads fields the server never sends: {missing}"


def test_the_fields_the_panel_shows_are_sent(answers):
    """What the README says the panel shows, by field."""
    assert answers["adapter"] >= {"name", "file", "weights", "state", "enabled", "fused", "blocks",
                                  "layer_strengths", "report", "lora_name"}
    assert answers["report"] >= {"format", "matched", "total", "warnings", "metadata", "base_model"}
    assert answers["meta"] >= {"title", "trigger_words", "base_model", "base_model_source"}
    assert answers["snapshot"] >= {"pipeline_id", "label", "source", "source_title", "applied_at", "current"}
    assert answers["pipeline"] >= {"pipeline_id", "label", "family", "dtype", "device", "branches"}
