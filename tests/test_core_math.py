"""What a LoRA stack computes: base at strength 0, a change at strength 1, parity with diffusers."""

from __future__ import annotations

import pytest
import torch

from helpers import make_pipe, render
from loradeck.core import Deck


def test_strength_zero_gives_the_base_image(pipe, files):
    base = render(pipe)
    Deck(pipe).add(files["a"], model=0.0, clip=0.0).add(files["k"], model=0.0, clip=0.0)
    assert torch.equal(render(pipe), base)


def test_a_lora_changes_the_image(pipe, files):
    base = render(pipe)
    Deck(pipe).add(files["a"])
    assert (render(pipe) - base).abs().max() > 1e-2


@pytest.mark.parametrize("clip_only", [False, True])
def test_each_strength_reaches_only_its_component(pipe, files, clip_only):
    base = render(pipe)
    deck = Deck(pipe).add(files["a"], model=0.0 if clip_only else 1.0, clip=1.0 if clip_only else 0.0)
    unet_layers = [m for m in pipe.unet.modules() if hasattr(m, "scaling")]
    te_layers = [m for m in pipe.text_encoder.modules() if hasattr(m, "scaling")]
    on, off = (te_layers, unet_layers) if clip_only else (unet_layers, te_layers)
    key = deck.stack.keyed()[0][0]
    assert on and off
    assert all(m.scaling[key] == m.lora_alpha[key] / m.r[key] for m in on)
    assert all(m.scaling[key] == 0.0 for m in off)
    assert (render(pipe) - base).abs().max() > 1e-3


def test_stack_of_two_equals_diffusers_set_adapters(files):
    ours, theirs = make_pipe(), make_pipe()
    deck = Deck(ours).add(files["a"], name="a", model=0.7, clip=0.4).add(files["b"], name="b", model=-0.5, clip=1.3)
    theirs.load_lora_weights(files["a"], adapter_name="a")
    theirs.load_lora_weights(files["b"], adapter_name="b")
    theirs.set_adapters(["a", "b"], [{"unet": 0.7, "text_encoder": 0.4}, {"unet": -0.5, "text_encoder": 1.3}])
    assert (render(ours) - render(theirs)).abs().max() < 1e-4
    deck.set_weights("a", model=1.2)
    theirs.set_adapters(["a", "b"], [{"unet": 1.2, "text_encoder": 0.4}, {"unet": -0.5, "text_encoder": 1.3}])
    assert (render(ours) - render(theirs)).abs().max() < 1e-4


def test_kohya_file_matches_its_diffusers_conversion(files, pipe):
    """The kohya file applied by LoRA Deck equals the same tensors applied by peft by hand."""
    from safetensors.torch import load_file

    sd = load_file(files["k"])
    base = render(pipe)
    Deck(pipe).add(files["k"], model=1.0, clip=1.0)
    ours = render(pipe)
    ref = make_pipe()
    for name, module in ref.unet.named_modules():
        key = "lora_unet_" + name.replace(".", "_")
        if f"{key}.lora_down.weight" in sd:
            delta = sd[f"{key}.lora_up.weight"] @ sd[f"{key}.lora_down.weight"] * sd[f"{key}.alpha"] / 4
            module.weight.data += delta
    for name, module in ref.text_encoder.named_modules():
        key = "lora_te_text_model_" + name.replace(".", "_")
        if f"{key}.lora_down.weight" in sd:
            delta = sd[f"{key}.lora_up.weight"] @ sd[f"{key}.lora_down.weight"] * sd[f"{key}.alpha"] / 4
            module.weight.data += delta
    assert (ours - render(ref)).abs().max() < 1e-3
    assert (ours - base).abs().max() > 1e-2


def test_fused_matches_unfused(pipe, files):
    deck = Deck(pipe).add(files["a"], model=0.8, clip=0.6).add(files["k"], model=0.5, clip=0.9)
    unfused = render(pipe)
    deck.fuse()
    assert all(a.fused for a in deck.active())
    assert (render(pipe) - unfused).abs().max() < 1e-3


def test_fuse_scale_multiplies_the_fused_strength(files):
    fused, reference = make_pipe(), make_pipe()
    Deck(fused).add(files["a"], model=1.0, clip=1.0).fuse(lora_scale=0.5)
    Deck(reference).add(files["a"], model=0.5, clip=0.5)
    assert (render(fused) - render(reference)).abs().max() < 1e-3


def test_fusing_a_subset_keeps_the_others_active(files):
    ours, reference = make_pipe(), make_pipe()
    deck = Deck(ours).add(files["a"], name="a").add(files["k"], name="k", model=0.7)
    Deck(reference).add(files["a"], name="a").add(files["k"], name="k", model=0.7)
    deck.fuse(names=["a"])
    views = {v.name: v for v in deck.active()}
    assert views["a"].fused and not views["k"].fused
    assert (render(ours) - render(reference)).abs().max() < 1e-3


def test_disabled_adapter_does_nothing(pipe, files):
    base = render(pipe)
    deck = Deck(pipe).add(files["a"], name="a")
    deck.set_weights("a", enabled=False)
    assert torch.equal(render(pipe), base)
    deck.set_weights("a", enabled=True)
    assert not torch.equal(render(pipe), base)


def test_active_reads_weights_back_from_the_layers(pipe, files):
    deck = Deck(pipe).add(files["a"], name="a", model=0.25, clip=0.75)
    (view,) = deck.active()
    assert dict(view.weights) == {"unet": 0.25, "text_encoder": 0.75}
    assert view.report["matched"] == view.report["total"] > 0
