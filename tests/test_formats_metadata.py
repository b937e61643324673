"""Header metadata (kohya ss_*, modelspec, civitai fields) and the load report built from it."""

from __future__ import annotations

import json

import pytest

import lora_fixtures as fx
from helpers import make_pipe
from loradeck.core import Deck
from loradeck.core.files.metadata import MAX_TEXT, parse_metadata, read_lora_metadata


def test_kohya_fields_and_trigger_words_by_frequency(tmp_path):
    meta = read_lora_metadata(fx.write_kohya_locon(str(tmp_path / "k.safetensors"), seed=1))
    # ss_tag_frequency sums folders: cat 10+4, sks style 12, outdoors 3, night 1
    assert meta.trigger_words == ("cat", "sks style", "outdoors", "night")
    assert meta.tags == (("cat", 14), ("sks style", 12), ("outdoors", 3), ("night", 1))
    assert (meta.base_model, meta.network, meta.dim, meta.alpha) == ("SD 1.x", "networks.lora", "4", "2")
    assert meta.title == meta.output_name == "fixture"
    assert meta.base_model_source == "ss_base_model_version='sd_v1'"


def test_lycoris_algorithm_from_network_args(tmp_path):
    meta = read_lora_metadata(fx.write_loha(str(tmp_path / "h.safetensors"), seed=1))
    assert (meta.network, meta.algorithm) == ("lycoris.kohya", "loha")


def test_modelspec_trigger_phrase_comes_first():
    meta = parse_metadata({"modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
                           "modelspec.title": "Ink Style", "modelspec.trigger_phrase": "ink style, sumi-e",
                           "ss_tag_frequency": json.dumps({"1_x": {"ink style": 3, "brush": 2}})})
    assert meta.title == "Ink Style" and meta.base_model == "SDXL"
    assert meta.trigger_words == ("ink style", "sumi-e", "brush")
    assert meta.architecture == "stable-diffusion-xl-v1-base/lora"


@pytest.mark.parametrize("fields,base,words", [
    ({"trainedWords": '["zxc person", "red hat"]', "baseModel": "Pony"}, "SDXL (Pony)", ("zxc person", "red hat")),
    ({"activation text": "mystyle", "sd version": "SD1"}, "SD 1.x", ("mystyle",)),
    ({"ss_v2": "True"}, "SD 2.x", ()),
    ({"baseModel": "Flux.1 D"}, "Flux", ()),
    ({"baseModel": "Some New Model"}, "Some New Model", ()),
    ({}, "", ()),
])
def test_civitai_style_and_other_base_model_fields(fields, base, words):
    meta = parse_metadata(fields)
    assert (meta.base_model, meta.trigger_words) == (base, words)


def test_hostile_or_broken_metadata_is_capped_and_never_fails():
    meta = parse_metadata({"modelspec.title": "<img src=x onerror=alert(1)>" + "x" * 10_000,
                           "ss_tag_frequency": "{not json", "ss_network_args": "[1, 2]",
                           "trainedWords": json.dumps(["w"] * 1000 + [{"a": 1}])})
    assert meta.title.startswith("<img src=x onerror=alert(1)>") and len(meta.title) == MAX_TEXT
    assert meta.tags == () and meta.algorithm == "" and meta.trigger_words == ("w",)  # items past the cap unread
    nested = parse_metadata({"trainedWords": json.dumps([{"a": 1}, "w"])})
    assert nested.trigger_words == ("{'a': 1}", "w")  # a non-text item is shown as text, never evaluated


def test_report_carries_metadata_for_the_panel_and_the_node(tmp_path):
    path = fx.write_lokr(str(tmp_path / "lokr.safetensors"), seed=1)
    report = Deck(make_pipe()).owner.prepare(path).report
    data = report.to_dict()
    assert data["metadata"]["trigger_words"][:2] == ["cat", "sks style"]
    assert data["metadata"]["base_model"] == "SD 1.x" and data["metadata"]["algorithm"] == "lokr"
    assert data["format"] == "LyCORIS LoKr" and data["matched"] == data["total"]
    json.dumps(data)  # the snapshot and web routes serialise it
    text = report.info_text()
    assert "base model: SD 1.x (ss_base_model_version='sd_v1')" in text and "trigger words: cat, sks style" in text


def test_file_without_metadata_guesses_its_base_from_keys_and_says_so(tmp_path):
    path = fx.write_peft(str(tmp_path / "p.safetensors"), seed=1)
    report = Deck(make_pipe()).owner.prepare(path).report
    assert report.metadata.base_model == "" and report.base_model == "unknown"
    guess = report.base_text()
    assert guess.startswith("SD 1.x, 2.x or SDXL (a UNet)") and "guessed from its keys" in guess
    assert report.to_dict()["metadata"]["trigger_words"] == []
