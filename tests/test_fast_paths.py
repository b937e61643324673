"""The shortcuts a first load and a strength change take (bench/README.md) give what the long ways give:
``evolve`` (core/frozen.py) is ``dataclasses.replace`` for fields already checked, a spec's strengths change with
every check still made, and a new file is converted while its hash is computed."""

from __future__ import annotations

import dataclasses

import pytest

from family_fixtures import fresh
from loradeck.core import Deck, SpecError, StackSpec
from loradeck.core.frozen import evolve
from loradeck.core.stacks import schedules
from loradeck.core.stacks.specs import AdapterSpec

FLUX2_LORA = "tests/fixtures/trainers/flux2/flux2_aitoolkit_lora.safetensors"


def spec(name: str, **weights: float) -> AdapterSpec:
    return AdapterSpec(path=f"{name}.safetensors", sha256=name[0] * 64, name=name, weights=weights or {"model": 1.0})


def test_evolve_is_replace_for_checked_fields_and_drops_cached_values():
    adapter = spec("a", model=0.5)
    stack = StackSpec((adapter,))
    stack.keyed()  # cached beside the fields
    new = evolve(stack, adapters=(dataclasses.replace(adapter, weights={"model": 0.7}),))
    assert new == dataclasses.replace(stack, adapters=new.adapters) and "_keyed" not in new.__dict__
    assert new.keyed()[0][1].weights == (("model", 0.7),) and stack.adapters[0].weights != new.adapters[0].weights
    with pytest.raises(TypeError, match="no field"):
        evolve(adapter, colour="red")


def fresh_family():
    from loradeck.core.families import FAMILIES

    return FAMILIES["flux2"]


def test_a_strength_change_checks_what_init_checks():
    adapter = spec("a", model=0.5)
    changed = adapter.with_weights(model=0.25, clip=2)
    assert changed == dataclasses.replace(adapter, weights={"model": 0.25, "clip": 2.0})
    assert changed.weight_for("text_encoder", fresh_family()) == 2.0 and changed.weight_for("transformer",
                                                                                             fresh_family()) == 0.25
    with pytest.raises(SpecError, match="finite"):
        adapter.with_weights(model=float("nan"))
    fused = dataclasses.replace(adapter, fused=True)
    assert fused.with_weights(model=0.3).weight_map["model"] == 0.3
    with pytest.raises(SpecError, match="strength schedule"):
        fused.with_weights(model=schedules.parse("ramp(1, 0.2)", "test"))
    stack = StackSpec((adapter, spec("b")))
    renamed = dataclasses.replace(adapter, name="b")
    with pytest.raises(SpecError, match="unique"):  # a new name still goes through __post_init__
        stack.replace_adapter("a", renamed)


def test_a_new_file_is_converted_while_its_hash_is_computed(monkeypatch, tmp_path):
    """The conversion of a file read now runs before the digest is joined (the hash is off the critical path);
    the adapter is the one a plain load gives."""
    import threading
    from concurrent.futures import Future

    from loradeck.core.adapters import owner as owner_module
    from loradeck.core.files import reading

    state = {}
    real_read, real_convert = reading._read_hashing, owner_module.convert

    def held_digest(path, st):
        view, done = real_read(path, st)
        state["sha"], state["pending"] = done.result(), Future()
        threading.Timer(5.0, lambda: state["pending"].done() or state["pending"].set_result(state["sha"])).start()
        return view, state["pending"]  # resolved by the conversion below (or, failing the test, by the timer)

    def converting(*args, **kwargs):
        state.setdefault("before_hash", not state["pending"].done())
        if not state["pending"].done():
            state["pending"].set_result(state["sha"])
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(reading, "_read_hashing", held_digest)
    monkeypatch.setattr(owner_module, "convert", converting)
    deck = Deck(fresh("flux2")).add(FLUX2_LORA, name="a")
    assert state["before_hash"] is True and deck.stack.adapters[0].sha256 == state["sha"]
    assert deck.owner.runtime.store.prepared(state["sha"], deck.owner.id).sha256 == state["sha"]


def test_a_file_refused_during_its_read_is_kept_as_read(runtime):
    """A file the conversion refuses while it is hashed: the refusal names the file, and the file counts as read
    once (asked again, it is refused from the store without a second read)."""
    from loradeck.core import IncompatibleLoraError

    deck = Deck(fresh("sd1"), runtime=runtime)
    for _ in range(2):
        with pytest.raises(IncompatibleLoraError, match="flux2_aitoolkit_lora"):
            deck.add(FLUX2_LORA, name="a")
        assert runtime.store.reads == 1 and not deck.stack.adapters
