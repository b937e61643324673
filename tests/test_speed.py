"""Issue 11's behaviour (not timings): direct injection equals peft's, a strength change is a scale write,
remove frees, fuse/unfuse by component, component-level loading, set_adapters, devices."""

from __future__ import annotations

import copy
import gc
import json
import weakref

import pytest
import torch
from peft import LoraConfig
from peft.tuners.lora import layer as lora_layer
from peft.tuners.tuners_utils import BaseTunerLayer

from helpers import assert_bit_identical, base_weights, make_pipe, render, runtime_for, spec
from loradeck.core import Deck, SpecError, StackSpec
from loradeck.core.adapters import peft_ops
from loradeck.core.adapters.fusion import ORIGINAL
from loradeck.core.formats import ModulePatch


def _lora_layers(model) -> list:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def _state(layer, key: str) -> dict:
    """Everything peft keeps about adapter ``key`` on a layer, in comparable form."""
    out = {name: getattr(layer, name).get(key) for name in ("r", "lora_alpha", "scaling", "lora_bias", "use_rslora",
                                                            "use_dora")}
    for name in ("lora_A", "lora_B", "lora_dropout"):
        module = getattr(layer, name)[key]
        out[name] = (type(module), {k: v for k, v in vars(module).items() if not k.startswith("_")},
                     {k: (tuple(p.shape), p.dtype, p.requires_grad) for k, p in module.named_parameters()})
    out["variant"] = key in layer.lora_variant
    out["active"] = list(layer.active_adapters)
    return out


@pytest.mark.parametrize("base", [torch.nn.Linear(12, 10), torch.nn.Conv2d(6, 8, 3, padding=1, stride=2),
                                  torch.nn.Conv2d(6, 8, 1)], ids=["linear", "conv3x3", "conv1x1"])
def test_direct_injection_builds_what_peft_builds(base):
    """The layer, its bookkeeping, its forward, its delta, merge/unmerge and delete equal peft's own
    ``update_layer`` path with the same tensors (guards against a peft release changing its layers)."""
    torch.manual_seed(0)
    kernel = tuple(base.weight.shape[2:])
    down = torch.randn(3, base.weight.shape[1], *kernel)
    up = torch.randn(base.weight.shape[0], 3, *(1,) * len(kernel))
    patch = ModulePatch(down=down, up=up, alpha=5.0)
    ours_model, theirs_model = torch.nn.Sequential(copy.deepcopy(base)), torch.nn.Sequential(copy.deepcopy(base))
    carriers = peft_ops.inject(ours_model, "k", {"0": patch})
    ours = ours_model[0]
    config = LoraConfig(r=3, lora_alpha=5.0, target_modules=["0"], init_lora_weights=False)
    theirs = (lora_layer.Conv2d if kernel else lora_layer.Linear)(theirs_model[0], "k", config, r=3, lora_alpha=5.0)
    theirs.set_adapter([], inference_mode=True)  # LoRA Deck's adapters start inactive
    with torch.no_grad():
        theirs.lora_A["k"].weight.copy_(down.reshape(theirs.lora_A["k"].weight.shape))
        theirs.lora_B["k"].weight.copy_(up.reshape(theirs.lora_B["k"].weight.shape))
    assert carriers == [("0", ours)] and type(ours) is type(theirs)
    assert _state(ours, "k") == _state(theirs, "k")
    assert ours_model.peft_config["k"].r == 3 and ours_model._hf_peft_config_loaded
    x = torch.randn(2, 12) if not kernel else torch.randn(2, 6, 9, 9)
    for layer in (ours, theirs):
        layer.set_adapter(["k"], inference_mode=True)
        layer.set_scale("k", 0.7)
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    assert torch.allclose(ours.get_delta_weight("k"), theirs.get_delta_weight("k"), atol=1e-6)
    ours.merge(adapter_names=["k"])
    ours.unmerge()
    ours.delete_adapter("k")
    assert not peft_ops.adapters_of(ours) and ours.active_adapters == []


@pytest.mark.parametrize("source,target", [(torch.float16, torch.bfloat16), (torch.bfloat16, torch.float16)])
def test_half_casts_through_float32_equal_the_direct_cast(source, target):
    """peft_ops casts float16 <-> bfloat16 factors through float32 on the CPU (faster there): every one of the
    65536 values comes out bit for bit as ``.to`` gives it (NaN stays NaN; files with NaN are refused anyway)."""
    every = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16).view(source)
    ours, direct = peft_ops._cast(every, "cpu", target), every.to(target)
    assert ours.dtype == target
    nan = torch.isnan(direct)
    assert torch.equal(torch.isnan(ours), nan)
    assert torch.equal(ours[~nan].view(torch.int16), direct[~nan].view(torch.int16))
    same = torch.randn(3, 4)
    assert peft_ops._cast(same, "cpu", torch.float32) is same  # the same tensor when it already fits


def test_a_files_factors_are_cast_in_one_operation_exactly_and_stay_separate_tensors(tmp_path):
    """A float16 LoRA file on a bfloat16 pipeline (ai-toolkit's FLUX.2 file: each fused qkv's down serves q, k and
    v): the factors are cast as one storage (files.reading makes them views of one tensor per dtype run), and each
    layer's lora_A / lora_B equals ``.to(bfloat16)`` of its factor bit for bit; q, k and v hold separate tensors
    (peft's state dict saves with safetensors, which refuses tensors sharing memory)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    from family_fixtures import fresh

    source = "tests/fixtures/trainers/flux2/flux2_aitoolkit_lora.safetensors"
    half = str(tmp_path / "half.safetensors")
    save_file({k: v.half() for k, v in load_file(source).items()}, half, {"format": "pt"})
    pipe = fresh("flux2")
    pipe.transformer.to(torch.bfloat16)
    calls = []
    real = peft_ops._cast_storages
    peft_ops._cast_storages = lambda factors: calls.append(real(factors)) or calls[-1]
    try:
        deck = Deck(pipe).add(half, name="h")
    finally:
        peft_ops._cast_storages = real
    key = next(k for k, _ in deck.stack.keyed())
    layers = _lora_layers(pipe.transformer)
    assert len(calls) == 1 and len(calls[0]) >= len(layers) > 6  # every factor of the file cast whole
    storages = {layer.lora_B[key].weight.untyped_storage().data_ptr() for _, layer in layers}
    assert len(storages) == 1  # one cast storage for every lora_B
    prepared = deck.owner.runtime.store.prepared(deck.stack.adapters[0].sha256, deck.owner.id)
    patches = prepared.patches["transformer"]
    for name, layer in layers:
        for side, factor in (("lora_A", patches[name].down), ("lora_B", patches[name].up)):
            weight = getattr(layer, side)[key].weight
            assert weight.dtype == torch.bfloat16 and torch.equal(weight.view(torch.int16),
                                                                   factor.to(torch.bfloat16).view(torch.int16))
    state = get_peft_model_state_dict(pipe.transformer, adapter_name=key)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "saved.safetensors"))


def test_factors_cast_on_the_worker_thread_load_under_inference_mode(files, tmp_path):
    """ComfyUI runs nodes under ``torch.inference_mode`` (per thread): a LoRA whose factors are cast (a float16 file
    on a float32 pipeline) loads there as outside, with the same layers (the live ComfyUI test's bf16 FLUX LoRA on a
    float32 split-file FLUX failed with "Inplace update to inference tensor outside InferenceMode")."""
    from safetensors.torch import load_file, save_file

    half = str(tmp_path / "half.safetensors")
    save_file({k: v.half() for k, v in load_file(files["a"]).items()}, half, {"format": "pt"})
    outside = Deck(make_pipe()).add(half, name="h")
    with torch.inference_mode():
        inside = Deck(make_pipe()).add(half, name="h")
    want = {name: layer.lora_B[key].weight for name, layer in _lora_layers(outside.pipe.unet)
            for key in layer.lora_B}
    got = {name: layer.lora_B[key].weight for name, layer in _lora_layers(inside.pipe.unet) for key in layer.lora_B}
    assert want and got.keys() == want.keys() and all(torch.equal(got[k], v) for k, v in want.items())
    assert torch.equal(render(inside.pipe), render(outside.pipe))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_the_quick_magnitude_bound_is_never_below_the_norm(dtype):
    from loradeck.core.adapters.magnitude import norm, quick_bound

    torch.manual_seed(0)
    for tensor in (torch.randn(32, 3072), torch.randn(9216, 32) * 0.01, torch.zeros(4, 4), torch.ones(1, 7) * -3):
        tensor = tensor.to(dtype)
        assert quick_bound(tensor) >= norm(tensor) * (1 - 1e-6)
    assert quick_bound(torch.ones(0, 4, dtype=dtype)) == 0.0
    for bad in (float("nan"), float("inf"), float("-inf")):
        spoiled = torch.randn(8, 8).to(dtype)
        spoiled[3, 5] = bad
        assert not quick_bound(spoiled) <= 1e4  # never lets a non-finite factor pass as surely fine


def test_strength_change_reads_no_file_and_injects_nothing(pipe, files, runtime, monkeypatch):
    deck = Deck(pipe).add(files["a"], name="a").add(files["k"], name="k")
    layers = {n: id(m) for n, m in _lora_layers(pipe.unet)}
    reads, loads = runtime.store.reads, deck.owner.loads

    def no_inject(*args, **kwargs):
        raise AssertionError("a strength change injected an adapter")

    monkeypatch.setattr(peft_ops, "inject", no_inject)
    monkeypatch.setattr(runtime.store, "read", no_inject)
    deck.set_adapters(["a", "k"], [{"model": 0.3, "clip": 0.2}, 0.9])
    deck.set_weights("a", model=1.4, blocks={"down": 0.5})
    deck.set_weights("k", text_encoder=-0.5)
    assert (runtime.store.reads, deck.owner.loads) == (reads, loads)
    assert {n: id(m) for n, m in _lora_layers(pipe.unet)} == layers
    views = {v.name: v for v in deck.active()}  # strengths as set, and the range the layers hold (read back)
    assert {n: dict(v.weights) for n, v in views.items()} == {"a": {"unet": 1.4, "text_encoder": 0.2},
                                                               "k": {"unet": 0.9, "text_encoder": -0.5}}
    spread = {c: (low, high) for c, low, high in views["a"].layer_strengths}
    assert spread == {"unet": (pytest.approx(0.7), pytest.approx(1.4)), "text_encoder": (pytest.approx(0.2),) * 2}


def test_scale_writes_equal_a_fresh_apply(files):
    """The fast path (only strengths changed) leaves the layers exactly as applying the stack anew does."""
    fast = Deck(make_pipe()).add(files["a"], name="a").add(files["k"], name="k")
    fast.set_weights("a", model=0.3, blocks={"up": 0.5}).set_weights("k", clip=0.7)
    fresh = Deck(make_pipe())
    fresh.owner.apply(fast.stack)
    for component in ("unet", "text_encoder"):
        a, b = _lora_layers(getattr(fast.pipe, component)), _lora_layers(getattr(fresh.pipe, component))
        assert [(n, dict(m.scaling), list(m.active_adapters)) for n, m in a] == \
               [(n, dict(m.scaling), list(m.active_adapters)) for n, m in b]
    assert torch.equal(render(fast.pipe), render(fresh.pipe))


def _adapter_tensors(pipe, key: str) -> list[weakref.ref]:
    refs = []
    for component in ("unet", "text_encoder"):
        for _, layer in _lora_layers(getattr(pipe, component)):
            if key in layer.lora_A:
                refs += [weakref.ref(layer.lora_A[key].weight), weakref.ref(layer.lora_B[key].weight)]
    return refs


def test_remove_frees_layers_and_tensors(pipe, files, runtime):
    deck = Deck(pipe).add(files["a"], name="a").fuse().unfuse().add(files["k"], name="k")
    key = next(k for k, s in deck.stack.keyed() if s.name == "a")
    model_refs = _adapter_tensors(pipe, key)
    prepared = runtime.store.prepared(deck.stack.get("a").sha256, deck.owner.id)
    store_refs = [weakref.ref(t) for patches in prepared.patches.values() for p in patches.values()
                  for t in p.tensors()]
    del prepared
    assert model_refs and store_refs
    deck.remove("a")
    gc.collect()
    assert not [r for r in model_refs if r() is not None], "the model still holds the adapter's tensors"
    assert all(key not in m.lora_A for c in ("unet", "text_encoder") for _, m in _lora_layers(getattr(pipe, c)))
    assert key not in pipe.unet.peft_config and key not in deck.owner.loaded_keys
    runtime.store.clear()  # its conversion was only cached: dropping it frees the last copy
    gc.collect()
    assert not [r for r in store_refs if r() is not None]
    deck.remove("k")
    assert not _lora_layers(pipe.unet) and not _lora_layers(pipe.text_encoder)
    assert not hasattr(pipe.unet, "peft_config")


def test_a_stack_nobody_holds_frees_its_adapters(pipe, files):
    """Nodes: when no live stack references an adapter any more (its branch is gone), the next apply removes it."""
    deck = Deck(pipe)
    owner = deck.owner
    left = StackSpec().add(spec(owner, files["a"], "a"))
    right = StackSpec().add(spec(owner, files["k"], "k"))
    owner.apply(left)
    owner.apply(right)
    assert len(owner.loaded_keys) == 2  # both branches alive: switching back is a scale write
    left_key = left.keyed()[0][0]
    del left
    gc.collect()
    owner.apply(right)
    assert owner.loaded_keys == (right.keyed()[0][0],)
    assert all(left_key not in m.lora_A for _, m in _lora_layers(pipe.unet))


def test_fuse_and_unfuse_by_component(pipe, files):
    deck = Deck(pipe).add(files["a"], name="a", model=0.8, clip=0.6)
    unfused = render(pipe)
    before = base_weights(pipe)
    deck.fuse(components=["unet"])
    assert [n for n, m in _lora_layers(pipe.unet) if hasattr(m, ORIGINAL)]
    assert not [n for n, m in _lora_layers(pipe.text_encoder) if hasattr(m, ORIGINAL)]
    assert (render(pipe) - unfused).abs().max() < 1e-4
    deck.fuse(components=["clip"])  # adds the text encoder
    assert [n for n, m in _lora_layers(pipe.text_encoder) if hasattr(m, ORIGINAL)]
    deck.unfuse(components=["unet"])
    assert not [n for n, m in _lora_layers(pipe.unet) if hasattr(m, ORIGINAL)]
    assert [n for n, m in _lora_layers(pipe.text_encoder) if hasattr(m, ORIGINAL)]
    assert deck.stack.get("a").fuse_components == ("text_encoder",)
    deck.unfuse()
    assert_bit_identical(before, base_weights(pipe))
    assert torch.equal(render(pipe), unfused)
    with pytest.raises(SpecError, match="no component 'vae'"):
        deck.fuse(components=["vae"])


def test_fuse_node_components_input(pipe, files):
    from loradeck.core.api import PipelineHandle
    from loradeck.nodes.fuse import FuseLoRA

    deck = Deck(pipe).add(files["a"], name="a")
    handle = PipelineHandle(deck.owner, deck.stack)
    (fused,) = FuseLoRA().fuse(handle, 1.0, True, "", "text_encoder")
    assert fused.stack.get("a").fuse_components == ("text_encoder",)
    fused.apply()
    assert not [n for n, m in _lora_layers(pipe.unet) if hasattr(m, ORIGINAL)]
    assert [n for n, m in _lora_layers(pipe.text_encoder) if hasattr(m, ORIGINAL)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_new_fuse_path_unfuses_exactly_and_matches_peft(files, dtype):
    pipe = make_pipe(dtype)
    original = base_weights(pipe)
    deck = Deck(pipe).add(files["a"], name="a", model=0.7).add(files["k"], name="k", model=-0.4)
    expected = {}
    for name, layer in _lora_layers(pipe.unet):  # peft's own deltas at the same strengths, summed in float32
        deltas = [layer.get_delta_weight(k).float() for k in layer.active_adapters]
        expected[name] = layer.get_base_layer().weight.float() + sum(deltas)
    deck.fuse()
    for name, layer in _lora_layers(pipe.unet):
        tolerance = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
        assert (layer.get_base_layer().weight.float() - expected[name]).abs().max() <= tolerance, name
    for cycle in range(3):
        deck.set_weights("a", model=cycle / 2)
        deck.unfuse()
        deck.fuse(lora_scale=1.0 + cycle)
    deck.unfuse()
    assert_bit_identical(original, base_weights(pipe))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_fuse_never_writes_the_original_and_unfuse_gives_it_back(files, compiled):
    """Eager: the fused values go to new tensors (the originals, possibly shared or file-backed, are never
    written) and unfusing hands the same storage back. Compiled: weights keep their storage both ways."""
    deck = Deck(make_pipe()).add(files["a"], name="a")
    if compiled:
        deck.compile(backend="eager", max_rank=4)
    weights = [layer.get_base_layer().weight for _, layer in _lora_layers(deck.pipe.unet)]
    storage = [w.data_ptr() for w in weights]
    views = [w.data for w in weights]  # what anyone holding the original storage sees
    values = [w.detach().clone() for w in weights]
    deck.fuse()
    assert all((w.data_ptr() == p) == compiled for w, p in zip(weights, storage, strict=True))
    assert any(not torch.equal(w, v) for w, v in zip(weights, values, strict=True))  # the adapter is baked in
    assert all(torch.equal(view, v) for view, v in zip(views, values, strict=True)) != compiled
    deck.unfuse()
    assert [w.data_ptr() for w in weights] == storage
    assert all(torch.equal(w, v) for w, v in zip(weights, values, strict=True))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_fuse_and_unfuse_across_inference_mode(files, compiled):
    """ComfyUI runs nodes under ``torch.inference_mode`` and the Python API usually does not: fusing in one and
    unfusing in the other (either way round) gives the same weights and the originals back exactly."""
    deck = Deck(make_pipe()).add(files["a"], name="a")
    if compiled:
        deck.compile(backend="eager", max_rank=4)
    original = base_weights(deck.pipe)
    deck.fuse()
    fused = base_weights(deck.pipe)
    deck.unfuse()
    with torch.inference_mode():
        deck.fuse()
    assert_bit_identical(fused, base_weights(deck.pipe))
    deck.unfuse()
    assert_bit_identical(original, base_weights(deck.pipe))
    deck.fuse()
    with torch.inference_mode():
        deck.unfuse()
        deck.fuse(lora_scale=0.5)
    deck.unfuse()
    assert_bit_identical(original, base_weights(deck.pipe))


def test_component_level_loading(files):
    """``add(components=[...])`` loads the file into those components only (load_lora_into_unet & co)."""
    only_unet = Deck(make_pipe()).add(files["a"], name="a", components=["unet"])
    assert _lora_layers(only_unet.pipe.unet) and not _lora_layers(only_unet.pipe.text_encoder)
    no_clip = Deck(make_pipe()).add(files["a"], name="a", clip=0.0)
    assert torch.allclose(render(only_unet.pipe), render(no_clip.pipe), atol=1e-6)
    only_unet.add(files["a"], name="full")  # the same file, whole: another adapter
    assert len(only_unet.owner.loaded_keys) == 2 and _lora_layers(only_unet.pipe.text_encoder)
    assert {v.name: dict(v.weights) for v in only_unet.active()}["a"] == {"unet": 1.0}
    with pytest.raises(SpecError, match="no component"):
        only_unet.add(files["k"], components=["transformer"])


def test_set_adapters_like_diffusers(pipe, files):
    deck = Deck(pipe).add(files["a"], name="a").add(files["k"], name="k")
    deck.set_adapters(["a"], [0.5])
    assert {v.name: (v.enabled, v.state, dict(v.weights)) for v in deck.active()} == {
        "a": (True, "active", {"unet": 0.5, "text_encoder": 0.5}),
        "k": (False, "disabled", {"unet": 1.0, "text_encoder": 1.0})}  # a disabled adapter keeps its strengths
    deck.set_adapters(["a", "k"], [{"unet": 0.25, "text_encoder": 1.0}, 2.0])
    assert {v.name: dict(v.weights)["unet"] for v in deck.active()} == {"a": 0.25, "k": 2.0}
    with pytest.raises(SpecError, match="2 names but 1 weights"):
        deck.set_adapters(["a", "k"], [1.0])


def test_set_device_and_parking_bookkeeping(files):
    """diffusers' set_lora_device, and inactive adapters parked away from the pipeline's device. There is no
    GPU here: the CPU pipeline parks on the meta device, which shows where every tensor went."""
    runtime = runtime_for(park_device="meta")
    deck = Deck(make_pipe(), runtime=runtime).add(files["a"], name="a").add(files["k"], name="k")
    keys = {s.name: k for k, s in deck.stack.keyed()}

    def devices(name):
        return {layer.lora_A[keys[name]].weight.device.type for c in ("unet", "text_encoder")
                for _, layer in _lora_layers(getattr(deck.pipe, c)) if keys[name] in layer.lora_A}

    assert devices("a") == devices("k") == {"cpu"}
    other = StackSpec().add(deck.stack.get("k"))
    deck.owner.apply(other)  # "a" is loaded (the deck's stack holds it) but not in the applied stack: parked
    assert devices("a") == {"meta"} and devices("k") == {"cpu"}
    deck.set_device(["k"], "meta")  # meta keeps no data: this only shows where set_device put the tensors
    assert devices("k") == {"meta"}
    with pytest.raises(SpecError, match="no adapter named"):
        deck.set_device(["nope"], "cpu")


def test_panel_snapshot_shows_the_store(files, runtime):
    from loradeck.nodes import routes

    Deck(make_pipe()).add(files["a"])
    body = json.loads(routes.snapshot_body(runtime))
    assert body["store_bytes"] == runtime.store.nbytes > 0
    assert body["store_budget"] == runtime.store.budget_bytes
