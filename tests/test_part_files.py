"""An adapter made of two files (``AdapterSpec.part_files``: a Wan 2.2 high/low pair's low-noise file serves
``transformer_2``), shown here on SD 1.x: one file for the UNet, another for the text encoder. It must compute what
the two files loaded into those components as two adapters compute, switch, fuse, save and unload as one adapter,
and keep its second file's content in the store while it is used. Also: the internal keys of adapters loaded into
some components only, which the grid's batch ordering reads."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import assert_bit_identical, base_weights, make_pipe, render, spec
from loradeck.core import Deck, SpecError, StackSpec, run_grid
from loradeck.core.generation.infotext import lora_fields
from loradeck.core.stacks.specs import GenerateParams, PartFile, copy_number


def _pair_spec(owner, files, name="ab"):
    """One adapter: file a for the UNet (and what else it has), file b for the text encoder."""
    a, b = spec(owner, files["a"], name), spec(owner, files["b"])
    return dataclasses.replace(a, part_files=(PartFile("text_encoder", b.path, b.sha256),))


def test_a_part_file_serves_its_component_as_two_adapters_would(files):
    ours = Deck(make_pipe())
    stack = StackSpec().add(_pair_spec(ours.owner, files))
    ours._set(stack)
    two = Deck(make_pipe()).add(files["a"], "a", components=["unet"]).add(files["b"], "b", components=["text_encoder"])
    assert (render(ours.pipe) - render(two.pipe)).abs().max() < 1e-6
    (view,) = ours.active()
    assert view.part_files == (("text_encoder", spec(ours.owner, files["b"]).path),)
    components = {c["component"]: (c["matched"], c["total"]) for c in view.report["components"]}
    assert set(components) == {"unet", "text_encoder"}  # the UNet counts of a, the text encoder counts of b
    assert components["text_encoder"] == dict((c, (m, t)) for c, m, t in ours.owner.prepare(files["b"]).report
                                              .components)["text_encoder"]
    hashes = lora_fields(stack)[0][1]
    assert "ab:" in hashes and "ab_text_encoder:" in hashes  # civitai sees both files


def test_a_two_file_adapter_switches_fuses_and_unloads_as_one(files, tmp_path):
    from loradeck.core.adapters.save import save_stack

    pipe = make_pipe()
    original = base_weights(pipe)
    deck = Deck(pipe)
    deck._set(StackSpec().add(_pair_spec(deck.owner, files)))
    on = render(pipe)
    deck.set_weights("ab", model=0.5, clip=2.0)
    half = render(pipe)
    assert (half - on).abs().max() > 1e-3
    deck.fuse()
    assert (render(pipe) - half).abs().max() < 1e-3
    report = save_stack(deck.owner, deck.stack, str(tmp_path / "saved.safetensors"))
    again = Deck(make_pipe()).add(report.path)
    assert (render(again.pipe) - half).abs().max() < 1e-3
    deck.unfuse().set_weights("ab", enabled=False)
    assert torch.equal(render(pipe), render(make_pipe()))
    deck.unload()
    assert_bit_identical(original, base_weights(pipe))


def test_the_second_files_content_stays_in_the_store_while_used(files):
    deck = Deck(make_pipe())
    pair = _pair_spec(deck.owner, files)
    store = deck.owner.runtime.store
    deck._set(StackSpec().add(pair))
    assert {pair.sha256, pair.part_files[0].sha256} <= set(store.prepared_for(deck.owner.id))
    deck._set(StackSpec())
    deck.owner.release()
    assert pair.part_files[0].sha256 not in set(store.prepared_for(deck.owner.id))


def test_part_files_are_checked():
    sha = "a" * 64
    with pytest.raises(SpecError, match="sha256 must be 64 hex"):
        PartFile("unet", "x", "short")
    part = PartFile("unet", "x", sha)
    with pytest.raises(SpecError, match="more than once per component"):
        from loradeck.core.stacks.specs import AdapterSpec

        AdapterSpec("y", sha, "y", part_files=(part, part))


def test_copy_numbers_of_keys_with_components(files):
    """Keys of adapters loaded into some components carry those components' names (``..._unet``); the grid orders
    copies of one file by their copy number, which used to be read from the wrong part of such a key."""
    deck = Deck(make_pipe()).add(files["a"], "a", components=["unet"]).add(files["a"], "again", components=["unet"])
    (first, a), (second, b) = deck.stack.keyed()
    assert (copy_number(first, a), copy_number(second, b)) == (1, 2)
    params = GenerateParams("a lighthouse", seed=1, steps=2, width=64, height=64)
    result = run_grid(deck.owner, deck.stack, params, "strength a: 0 | 1")
    assert result.batched, result.text
