"""The shortcuts a first load and a strength change take (bench/README.md) give what the long ways give:
huge-page buffers (core/buffers.py) hold the same values and are freed, ``evolve`` (core/frozen.py) is
``dataclasses.replace`` for fields already checked, and a spec's strengths change with every check still made."""

from __future__ import annotations

import dataclasses
import gc
import mmap
import weakref

import pytest
import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file

from family_fixtures import fresh
from loradeck.core import Deck, SpecError, StackSpec, buffers
from loradeck.core.frozen import evolve
from loradeck.core.stacks import schedules
from loradeck.core.stacks.specs import AdapterSpec

FLUX2_LORA = "tests/fixtures/trainers/flux2/flux2_aitoolkit_lora.safetensors"


def spec(name: str, **weights: float) -> AdapterSpec:
    return AdapterSpec(path=f"{name}.safetensors", sha256=name[0] * 64, name=name, weights=weights or {"model": 1.0})


class _Region(mmap.mmap):  # an mmap that can be watched (weakref) and counted
    made: list = []

    def __new__(cls, *args, **kwargs):
        region = super().__new__(cls, *args, **kwargs)
        cls.made.append(weakref.ref(region))
        return region


@pytest.fixture
def regions(monkeypatch):
    """Every buffer of 1 byte or more goes the huge-page way; yields the weakrefs of the regions mapped."""
    monkeypatch.setattr(buffers, "HUGE_MIN_BYTES", 1)
    monkeypatch.setattr(buffers.mmap, "mmap", _Region)
    _Region.made = []
    yield _Region.made


@pytest.mark.skipif(buffers._HUGEPAGE is None, reason="no MADV_HUGEPAGE on this system")
def test_a_huge_page_buffer_is_a_private_mapping_freed_with_its_last_tensor(regions):
    tensor = buffers.empty(3 * 1024 * 1024, torch.bfloat16)
    assert tensor.shape == (3 * 1024 * 1024,) and tensor.dtype == torch.bfloat16 and len(regions) == 1
    tensor.fill_(1.5)
    view = tensor[10:20]
    del tensor
    gc.collect()
    assert regions[0]() is not None and torch.equal(view, torch.full((10,), 1.5, dtype=torch.bfloat16))
    del view
    gc.collect()
    assert regions[0]() is None  # unmapped: the memory went back to the system


def test_small_buffers_and_refused_advice_use_torchs_allocator(monkeypatch):
    made = []
    monkeypatch.setattr(buffers.mmap, "mmap", lambda *a, **k: made.append(1) or mmap.mmap(*a, **k))
    small = buffers.empty(16, torch.float16)
    assert small.shape == (16,) and not made

    def refuse(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(buffers.mmap, "mmap", refuse)
    monkeypatch.setattr(buffers, "HUGE_MIN_BYTES", 1)
    fallback = buffers.empty(1000, torch.float32)
    assert fallback.shape == (1000,) and fallback.dtype == torch.float32


@pytest.mark.skipif(buffers._HUGEPAGE is None, reason="no MADV_HUGEPAGE on this system")
def test_a_load_through_huge_page_buffers_equals_one_without_them(regions, tmp_path, monkeypatch):
    """A float16 file on a bfloat16 FLUX.2: the file's bytes and the cast factors in mapped regions give the layers
    of a load through torch's allocator bit for bit; peft's state dict of them saves."""
    half = str(tmp_path / "half.safetensors")
    save_file({k: v.half() for k, v in load_file(FLUX2_LORA).items()}, half, {"format": "pt"})

    def load():
        pipe = fresh("flux2")
        pipe.transformer.to(torch.bfloat16)
        deck = Deck(pipe).add(half, name="h")
        key = next(k for k, _ in deck.stack.keyed())
        return deck, {n: (m.lora_A[key].weight.clone(), m.lora_B[key].weight.clone())
                      for n, m in pipe.transformer.named_modules() if isinstance(m, BaseTunerLayer)}

    deck, mapped = load()
    assert len(regions) >= 2  # the file's bytes, then the cast storage
    monkeypatch.setattr(buffers, "HUGE_MIN_BYTES", 1 << 62)
    _, plain = load()
    assert mapped.keys() == plain.keys() and len(mapped) > 6
    for name, (down, up) in mapped.items():
        assert torch.equal(down.view(torch.int16), plain[name][0].view(torch.int16))
        assert torch.equal(up.view(torch.int16), plain[name][1].view(torch.int16))
    from peft import get_peft_model_state_dict

    key = next(k for k, _ in deck.stack.keyed())
    state = get_peft_model_state_dict(deck.pipe.transformer, adapter_name=key)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "saved.safetensors"))


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
