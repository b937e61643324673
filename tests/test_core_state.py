"""State guarantees: exact unfuse, no reload for a strength change, failures change nothing."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import assert_bit_identical, base_weights, make_pipe, render, spec
from lora_fixtures import save_diffusers_lora, save_kohya_lora
from loradeck.core import Deck, FuseError, IncompatibleLoraError, LoraFileError, StackSpec


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_base_weights_bit_identical_after_ten_cycles(files, dtype):
    pipe = make_pipe(dtype)
    original = base_weights(pipe)
    deck = Deck(pipe).add(files["a"], name="a").add(files["k"], name="k", model=0.6)
    for cycle in range(10):
        deck.fuse(lora_scale=0.5 + cycle / 10)
        deck.set_weights("a", model=1.0 - cycle / 7, clip=cycle / 5)  # reweight while fused: re-fuses
        if cycle % 3 == 0:
            deck.fuse(names=["k"])
        deck.unfuse()
        deck.set_weights("k", model=cycle / 3)
    deck.fuse()
    deck.remove("a")  # removing a fused adapter must not bake it in
    deck.unload()
    assert_bit_identical(original, base_weights(pipe))


def test_fused_then_unfused_layers_hold_no_copies(pipe, files):
    deck = Deck(pipe).add(files["a"]).fuse()
    wrapped = [m for m in pipe.unet.modules() if hasattr(m, "_loradeck_original")]
    assert wrapped
    deck.unfuse()
    assert not [m for m in pipe.unet.modules() if hasattr(m, "_loradeck_original")]


def test_strength_change_reads_no_file_and_reloads_nothing(pipe, files, runtime):
    deck = Deck(pipe).add(files["a"], name="a").add(files["k"], name="k")
    render(pipe)
    reads, loads = runtime.store.reads, deck.owner.loads
    assert reads == 2 and loads == 2
    for w in (0.1, 0.5, 1.5):
        deck.set_weights("a", model=w, clip=w / 2)
        deck.set_weights("k", model=-w)
    assert (runtime.store.reads, deck.owner.loads) == (reads, loads)
    assert dict(next(v for v in deck.active() if v.name == "a").weights)["unet"] == 1.5


def test_branches_are_independent_in_either_order(files):
    """Two stacks on one owner give the images of two fresh pipelines, whatever the order."""
    shared = Deck(make_pipe())
    owner = shared.owner
    from loradeck.core.stacks.stack_ops import fuse

    left = StackSpec().add(spec(owner, files["a"], "a", 0.9, 0.3))
    right = fuse(StackSpec().add(spec(owner, files["k"], "k", 0.6, 1.0)))
    fresh = {}
    for name, stack in (("left", left), ("right", right)):
        alone = Deck(make_pipe())
        alone.owner.apply(stack)
        fresh[name] = render(alone.pipe)
    for order in (("left", "right", "left"), ("right", "left", "right")):
        for name in order:
            owner.apply(left if name == "left" else right)
            assert (render(owner.pipe) - fresh[name]).abs().max() < 1e-3, (order, name)


def _wrong_text_encoder_file(tmp_path, files) -> str:
    """UNet part fits; the text-encoder part has the wrong width: must fail before changing anything."""
    sd = load_file(files["a"])
    for key in list(sd):
        if key.startswith("text_encoder.") and key.endswith("lora_A.weight"):
            sd[key] = torch.randn(sd[key].shape[0], sd[key].shape[1] * 2)
    path = str(tmp_path / "half_wrong.safetensors")
    save_file(sd, path)
    return path


def test_failed_load_leaves_pipeline_bit_identical(pipe, files, tmp_path):
    deck = Deck(pipe).add(files["k"], name="k", model=0.7)
    before_weights, before_image = base_weights(pipe), render(pipe)
    before_layers = sorted(n for n, m in pipe.unet.named_modules() if hasattr(m, "scaling"))
    bad = _wrong_text_encoder_file(tmp_path, files)
    with pytest.raises(IncompatibleLoraError) as err:
        deck.add(bad, name="bad")
    assert "half_wrong.safetensors" in str(err.value) and "text_encoder" in str(err.value)
    assert_bit_identical(before_weights, base_weights(pipe))
    assert sorted(n for n, m in pipe.unet.named_modules() if hasattr(m, "scaling")) == before_layers
    assert torch.equal(render(pipe), before_image)
    assert [v.name for v in deck.active()] == ["k"]


def test_sdxl_sized_file_is_refused_with_its_base(pipe, tmp_path):
    path = str(tmp_path / "wide.safetensors")
    save_kohya_lora(path, seed=5, unet_width_scale=2)
    before = base_weights(pipe)
    with pytest.raises(IncompatibleLoraError, match="sd_v1|other shapes"):
        Deck(pipe).add(path)
    assert_bit_identical(before, base_weights(pipe))


def test_non_finite_fuse_is_refused_and_restored(files, tmp_path):
    """A change within the load-time bound at strength 1 can still overflow float16 when fused at strength 100."""
    pipe = make_pipe(torch.float16)
    sd = load_file(files["a"])
    key = sorted(k for k in sd if k.startswith("unet.") and "lora_B" in k)[-1]
    down = sd[key.replace("lora_B", "lora_A")].float()
    up = torch.zeros_like(sd[key])
    up[0] = 5000.0 / float(down.sum(0).norm())  # one output row: ||dW|| = 5000, passes the bound at load
    sd[key] = up
    path = str(tmp_path / "huge.safetensors")
    save_file(sd, path)
    deck = Deck(pipe).add(files["k"], name="k")
    before_weights, before_image = base_weights(pipe), render(pipe)
    deck.add(path, name="huge", model=100.0, clip=0.0)
    with pytest.raises(FuseError, match="huge"):
        deck.fuse()
    deck.remove("huge")
    assert_bit_identical(before_weights, base_weights(pipe))
    assert torch.equal(render(pipe), before_image)


def test_nan_file_is_refused_at_load(pipe, files, tmp_path):
    sd = load_file(files["a"])
    key = sorted(sd)[0]
    sd[key][0, 0] = float("nan")
    path = str(tmp_path / "nan.safetensors")
    save_file(sd, path)
    before = base_weights(pipe)
    with pytest.raises(LoraFileError, match="NaN"):
        Deck(pipe).add(path)
    assert_bit_identical(before, base_weights(pipe))


def test_same_file_twice_in_one_stack_is_two_adapters(pipe, files):
    base = render(pipe)
    deck = Deck(pipe).add(files["a"], model=0.5, clip=0.5).add(files["a"], model=0.5, clip=0.5)
    assert [v.name for v in deck.active()] == ["a", "a (2)"]
    twice = render(pipe)
    deck.unload().add(files["a"], model=1.0, clip=1.0)
    assert (twice - render(pipe)).abs().max() < 1e-4
    assert not torch.equal(twice, base)


def test_eviction_keeps_the_model_clean(pipe, files, tmp_path, use_models):
    use_models(None, max_adapters=1)
    before = base_weights(pipe)
    extra = save_diffusers_lora(str(tmp_path / "c.safetensors"), seed=9)
    deck = Deck(pipe).add(files["a"], name="a")
    deck.set_weights("a", enabled=False).add(extra, name="c")  # "a" stays in the stack, disabled
    deck.owner.apply(StackSpec(deck.stack.adapters[1:]))  # a branch without "a": beyond the cap, it is evicted
    assert deck.owner.loaded_keys == (deck.stack.keyed()[1][0],)
    deck.unload()
    assert not [m for m in pipe.unet.modules() if hasattr(m, "scaling")]
    assert_bit_identical(before, base_weights(pipe))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_the_finiteness_check_finds_one_bad_value_anywhere(dtype, bad):
    from loradeck.core.adapters.fusion import finite

    weight = torch.randn(64, 32, 3, 3).to(dtype)
    assert finite(weight) and finite(weight[:0])
    for flat in (0, 1234, weight.numel() - 1):
        spoiled = weight.clone()
        spoiled.view(-1)[flat] = bad
        assert not finite(spoiled) and not finite(spoiled.permute(0, 2, 3, 1))  # contiguous or not


def test_a_family_fix_runs_once_when_a_pipeline_is_taken_over_before_anything_reads_it(pipe, runtime):
    """``Family.fix`` (a repair diffusers' pipelines of a family need) runs on every pipeline an owner takes over,
    before the owner indexes its modules; a failing fix leaves no owner behind."""
    from dataclasses import replace

    from loradeck.core.adapters.owner import PipelineOwner
    from loradeck.core.families import FAMILIES

    seen = []

    def fix(p):
        seen.append((p, [n for n, _ in p.unet.named_modules()][:1]))
        p.unet.register_to_config(fixed=True)

    owner = PipelineOwner(pipe, replace(FAMILIES["sd1"], fix=fix), "fixed", runtime, "p1")
    assert seen == [(pipe, [""])] and owner.pipe.unet.config.fixed
    with pytest.raises(ZeroDivisionError):
        PipelineOwner(pipe, replace(FAMILIES["sd1"], fix=lambda p: 1 / 0), "broken", runtime, "p2")
