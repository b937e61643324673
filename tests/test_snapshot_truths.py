"""What a snapshot says is what the layers hold: one state per adapter (disabled is not active), block weights and
the strength range they give the layers, and the last stack of every branch (Generate / Save node) of a graph."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from helpers import make_pipe
from loradeck.core import Deck
from loradeck.core.adapters.owner import MAX_BRANCHES
from loradeck.core.adapters.snapshot import blocks_text
from loradeck.core.api import PipelineHandle
from loradeck.nodes import NODE_CLASS_MAPPINGS


@pytest.fixture
def deck(files):
    return Deck(make_pipe(), label="truths").add(files["a"], name="a", model=0.8, clip=0.5).add(files["k"], name="k")


def _views(deck) -> dict:
    return {v.name: v for v in deck.active()}


def test_disabled_is_neither_active_nor_fused(deck):
    deck.set_weights("k", enabled=False)
    k = _views(deck)["k"]
    assert (k.state, k.enabled, k.fused) == ("disabled", False, False)
    assert dict(k.weights) == {"unet": 1.0, "text_encoder": 1.0}  # what it will run at when enabled again
    assert all(low == high == 0 for _, low, high in k.layer_strengths)  # what the layers do now: nothing
    assert _views(deck)["a"].state == "active"


def test_fused_is_read_from_the_layers(deck):
    deck.fuse(names=["k"], lora_scale=0.5)
    views = _views(deck)
    assert (views["k"].state, views["k"].fused) == ("fused", True) and not views["a"].fused
    assert dict(views["k"].weights) == {"unet": 0.5, "text_encoder": 0.5}  # the fuse scale is part of it
    assert all(low == high == 0.5 for _, low, high in views["k"].layer_strengths)
    deck.unfuse()
    assert _views(deck)["k"].state == "active"


def test_block_weights_are_shown_with_the_strength_range_of_the_layers(deck):
    deck.set_weights("a", blocks={"down": 0.25, "mid": 0.0, "up": 1.0})
    a = _views(deck)["a"]
    assert a.blocks == "down=0.25, mid=0, up=1"
    assert dict(a.weights)["unet"] == 0.8  # the strength set, not the first layer's
    spread = {c: (low, high) for c, low, high in a.layer_strengths}
    assert spread["unet"] == (0.0, 0.8) and spread["text_encoder"] == (0.5, 0.5)
    deck.set_weights_text("a: lbw=1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1")
    assert _views(deck)["a"].blocks.startswith("lbw=1,0,0,0,0,0,0,0,1,")


@pytest.mark.parametrize("blocks,text", [((("up.block_1", (0.4, 0.8, 1.0)),), "up.block_1=[0.4,0.8,1]"),
                                         ((("transformer_blocks.0-5", 0.5),), "transformer_blocks.0-5=0.5"),
                                         ((), "")])
def test_blocks_text(blocks, text):
    assert blocks_text(blocks) == text


def _without(stack, name):
    from loradeck.core.stacks.specs import StackSpec

    return StackSpec(tuple(a for a in stack.adapters if a.name != name), stack.safe_fusing)


def test_each_branch_keeps_its_last_stack(deck, files):
    owner, both = deck.owner, deck.stack
    owner.apply(_without(both, "k"), "5", "Generate (one LoRA)")
    owner.apply(both, "7", "Generate (stack)")
    owner.apply(_without(both, "k"), "5", "Generate (one LoRA)")  # the same node again
    branches = owner.branches
    assert [(b.source, b.source_title, len(b.adapters)) for b in branches] == [
        ("5", "Generate (one LoRA)", 1), ("7", "Generate (stack)", 2), ("", "", 2)]
    assert branches[0] is owner.snapshot  # the newest is what the model holds now
    for i in range(MAX_BRANCHES + 3):
        owner.apply(both, f"n{i}")
    assert len(owner.branches) == MAX_BRANCHES and owner.branches[0].source == f"n{MAX_BRANCHES + 2}"


def test_generate_and_save_nodes_say_which_node_applied(deck, tmp_path, use_models, lora_dir):
    use_models(str(lora_dir), str(tmp_path))
    handle = PipelineHandle(deck.owner, deck.stack)
    prompt = {"12": {"class_type": "Generate|LoRADeck", "_meta": {"title": "Generate (fused)"}, "inputs": {}}}
    NODE_CLASS_MAPPINGS["Generate|LoRADeck"]().generate(handle, "x", "", 1, 1, 1.0, 64, 64, 1, unique_id="12",
                                                       api_prompt=prompt)
    assert (deck.owner.snapshot.source, deck.owner.snapshot.source_title) == ("12", "Generate (fused)")
    NODE_CLASS_MAPPINGS["SaveLoRA|LoRADeck"]().save(handle, "s", "separate", 4, unique_id="3", api_prompt={})
    assert (deck.owner.snapshot.source, deck.owner.snapshot.source_title) == ("3", "")
    hidden = NODE_CLASS_MAPPINGS["Generate|LoRADeck"].INPUT_TYPES()["hidden"]
    assert hidden == {"unique_id": "UNIQUE_ID", "api_prompt": "PROMPT"}  # never "prompt": Generate has that input


def _same_as_a_full_read(owner) -> None:
    assert replace(owner.snapshot, applied_at=0) == replace(owner.read_back(), applied_at=0)


def test_a_strength_change_rereads_only_the_changed_adapters_and_agrees_with_a_full_read(deck, monkeypatch):
    """Strengths alone: the snapshot re-reads those adapters' scales and nothing else (a strength change's
    whole cost is scale writes plus this read), yet says exactly what reading every layer says."""
    from loradeck.core.adapters import snapshot

    full_views = []
    monkeypatch.setattr(snapshot, "_view", lambda *a, _view=snapshot._view: full_views.append(a[1]) or _view(*a))
    owner = deck.owner
    deck.set_weights("a", model=0.3, clip=-0.7)
    deck.set_adapters(["a", "k"], [{"model": 0.6, "clip": 0.2}, 1.5])
    deck.set_weights("a", blocks={"down": 0.25, "mid": 0.0, "up": 1.0})  # block weights: per-layer scales
    deck.set_weights("k", model="ramp(1, 0.2)")  # a schedule: the layers hold its first step
    assert full_views == []  # none of these read a view in full
    views = _views(deck)
    assert dict(views["a"].weights) == {"unet": 0.6, "text_encoder": 0.2}
    assert {c: (lo, hi) for c, lo, hi in views["a"].layer_strengths} == {"unet": (0.0, 0.6),
                                                                         "text_encoder": (0.2, 0.2)}
    assert views["k"].schedule == (("unet", "ramp(1, 0.2)"),)
    _same_as_a_full_read(owner)
    deck.set_weights("k", enabled=False)  # a state change: read in full
    deck.set_weights("k", model=0.4)  # a disabled adapter's strength: read in full, its layers stay off
    deck.set_weights("a", model=0.9)
    _same_as_a_full_read(owner)
    assert _views(deck)["k"].state == "disabled" and all(hi == 0 for _, _, hi in _views(deck)["k"].layer_strengths)


def test_rslora_layers_show_the_strength_set():
    """An rsLoRA scale is alpha / sqrt(r) per unit of strength: the snapshot undoes that, not alpha / r."""
    from family_fixtures import fresh

    folder = Path(__file__).resolve().parent / "fixtures" / "trainers" / "peft_sd1_rslora"
    deck = Deck(fresh("sd1")).add(str(folder), name="rs", model=0.7)
    assert {c: (lo, hi) for c, lo, hi in _views(deck)["rs"].layer_strengths} == {"unet": (0.7, 0.7)}
    deck.set_weights("rs", model=0.35)
    assert {c: (lo, hi) for c, lo, hi in _views(deck)["rs"].layer_strengths} == {"unet": (0.35, 0.35)}
    _same_as_a_full_read(deck.owner)
