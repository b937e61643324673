"""Whole-parameter differences (``diff_b`` biases, 1-D ``diff`` norms, full differences on layers peft cannot
wrap): summed into the parameters at their strengths, exactly, and put back bit for bit."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import assert_bit_identical, base_weights, make_pipe, render
from loradeck.core import Deck, IncompatibleLoraError, LoraFileError
from loradeck.core.adapters.save import save_stack

LINEAR = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0"  # a Linear with a bias
NORM = "down_blocks.0.attentions.0.norm"  # a GroupNorm: no low-rank pair fits it
EMBEDDING = "text_model.embeddings.token_embedding"  # an nn.Embedding: a full difference of its weight


def _rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 0.05


def _file(path, pipe, seed: int, kohya: bool = True) -> tuple[str, dict]:
    """A LoRA pair + a bias difference on LINEAR, a norm's weight and bias, the embedding's weight; and the
    differences it stands for (parameter path -> delta at strength 1)."""
    unet, text = pipe.unet, pipe.text_encoder
    linear, norm = unet.get_submodule(LINEAR), unet.get_submodule(NORM)
    embedding = text.get_submodule(EMBEDDING.removeprefix("text_model.")) if not hasattr(text, "text_model") \
        else text.get_submodule(EMBEDDING)
    down, up = _rand(2, linear.in_features, seed=seed), _rand(linear.out_features, 2, seed=seed + 1)
    bias, norm_w, norm_b = _rand(linear.out_features, seed=seed + 2), _rand(*norm.weight.shape, seed=seed + 3), \
        _rand(*norm.bias.shape, seed=seed + 4)
    emb = _rand(*embedding.weight.shape, seed=seed + 5)
    if kohya:
        key, nkey, ekey = (f"lora_unet_{LINEAR.replace('.', '_')}", f"lora_unet_{NORM.replace('.', '_')}",
                           f"lora_te_{EMBEDDING.replace('.', '_')}")
        sd = {f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up, f"{key}.diff_b": bias,
              f"{nkey}.diff": norm_w, f"{nkey}.diff_b": norm_b, f"{ekey}.diff": emb}
    else:
        sd = {f"unet.{LINEAR}.lora_A.weight": down, f"unet.{LINEAR}.lora_B.weight": up, f"unet.{LINEAR}.diff_b": bias,
              f"unet.{NORM}.diff": norm_w, f"unet.{NORM}.diff_b": norm_b, f"text_encoder.{EMBEDDING}.diff": emb}
    save_file(sd, path)
    return path, {f"unet.{LINEAR}.bias": bias, f"unet.{NORM}.weight": norm_w, f"unet.{NORM}.bias": norm_b,
                  f"text_encoder.{EMBEDDING}.weight": emb, "pair": (up, down)}


def _param(pipe, path: str) -> torch.Tensor:
    component, _, rest = path.partition(".")
    model = getattr(pipe, component)
    module, _, name = rest.rpartition(".")
    found = model.get_submodule(module.removeprefix("text_model.") if not hasattr(model, "text_model") else module)
    return getattr(getattr(found, "base_layer", found), name).detach()


def _expected(original: torch.Tensor, *terms) -> torch.Tensor:
    total = original.float().clone()
    for strength, delta in terms:
        total += strength * delta.float()
    return total.to(original.dtype)


@pytest.mark.parametrize("kohya", [True, False], ids=["kohya", "dotted"])
def test_differences_are_summed_at_their_strengths_and_put_back_exactly(tmp_path, kohya):
    pipe = make_pipe()
    before = base_weights(pipe)
    originals = {p: _param(pipe, p).clone() for p in ("unet." + LINEAR + ".bias", f"unet.{NORM}.weight",
                                                      f"unet.{NORM}.bias", f"text_encoder.{EMBEDDING}.weight")}
    path, deltas = _file(str(tmp_path / "a.safetensors"), pipe, 1, kohya)
    other, deltas2 = _file(str(tmp_path / "b.safetensors"), pipe, 11, kohya)
    deck = Deck(pipe).add(path, "a", model=0.7, clip=0.3).add(other, "b", model=-0.4)
    for p, original in originals.items():
        s1, s2 = (0.3, 1.0) if p.startswith("text_encoder") else (0.7, -0.4)
        assert torch.equal(_param(pipe, p), _expected(original, (s1, deltas[p]), (s2, deltas2[p]))), p
    (view_a, view_b) = deck.active()
    assert view_a.layers == 5 and dict(view_a.weights) == {"unet": 0.7, "text_encoder": 0.3}
    deck.set_weights("a", unet=0.0, text_encoder=0.0)
    for p, original in originals.items():
        s2 = 1.0 if p.startswith("text_encoder") else -0.4
        assert torch.equal(_param(pipe, p), _expected(original, (s2, deltas2[p]))), p
    deck.fuse()
    deck.unfuse()
    deck.remove("a")
    deck.remove("b")
    assert_bit_identical(before, base_weights(pipe))
    for p, original in originals.items():
        assert torch.equal(_param(pipe, p), original), p


def test_the_image_equals_the_merge_written_by_hand(tmp_path):
    pipe, reference = make_pipe(), make_pipe()
    path, deltas = _file(str(tmp_path / "a.safetensors"), pipe, 1)
    Deck(pipe).add(path, model=0.8, clip=0.5)
    up, down = deltas.pop("pair")
    with torch.no_grad():
        reference.unet.get_submodule(LINEAR).weight += 0.8 * (up @ down)
        for p, delta in deltas.items():
            _param(reference, p).copy_(_expected(_param(reference, p), (0.5 if "text" in p else 0.8, delta)))
    assert (render(pipe) - render(reference)).abs().max() < 1e-5


def test_a_failed_apply_and_a_strength_zero_leave_the_parameters_bit_identical(tmp_path):
    pipe = make_pipe()
    before = base_weights(pipe)
    path, _ = _file(str(tmp_path / "a.safetensors"), pipe, 1)
    deck = Deck(pipe).add(path, model=0.0, clip=0.0)
    deck.owner.apply(deck.stack)
    assert_bit_identical(before, base_weights(pipe))
    bad = str(tmp_path / "bad.safetensors")
    save_file({**load_file(path), "lora_unet_conv_in.lora_down.weight": torch.zeros(2, 3),
               "lora_unet_conv_in.lora_up.weight": torch.zeros(16, 2)}, bad)
    with pytest.raises(IncompatibleLoraError):
        deck.add(bad)
    assert_bit_identical(before, base_weights(pipe))


def test_a_difference_that_does_not_fit_is_refused_naming_the_module(tmp_path):
    pipe = make_pipe()
    key = f"lora_unet_{NORM.replace('.', '_')}"
    wrong = str(tmp_path / "wrong.safetensors")
    save_file({f"{key}.diff": torch.zeros(7)}, wrong)
    with pytest.raises(IncompatibleLoraError, match="norm"):
        Deck(pipe).add(wrong)
    no_bias = str(tmp_path / "nobias.safetensors")
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"  # to_q has no bias
    save_file({f"{name}.diff_b": torch.zeros(16)}, no_bias)
    with pytest.raises(IncompatibleLoraError, match="to_q"):
        Deck(pipe).add(no_bias)
    absurd = str(tmp_path / "absurd.safetensors")
    save_file({f"{key}.diff_b": torch.full((16,), 1e7)}, absurd)
    with pytest.raises(LoraFileError, match="would change"):
        Deck(pipe).add(absurd)


def test_cells_that_differ_in_whole_parameter_changes_cannot_share_a_batch(tmp_path):
    pipe = make_pipe()
    path, _ = _file(str(tmp_path / "a.safetensors"), pipe, 1)
    deck = Deck(pipe).add(path, "a")
    full = deck.stack
    soft = deck.set_weights("a", model=0.5).stack
    assert "whole parameters" in deck.owner.batch_conflict([full, soft])
    assert deck.owner.batch_conflict([soft, soft]) is None


def test_a_saved_stack_keeps_its_differences(tmp_path):
    pipe = make_pipe()
    path, _ = _file(str(tmp_path / "a.safetensors"), pipe, 1)
    deck = Deck(pipe).add(path, model=0.6, clip=0.9)
    applied = {p: _param(pipe, p).clone() for p in (f"unet.{NORM}.weight", f"unet.{LINEAR}.bias")}
    out = str(tmp_path / "saved.safetensors")
    save_stack(deck.owner, deck.stack, out)
    saved = load_file(out)
    assert f"unet.{NORM}.diff" in saved and f"unet.{LINEAR}.diff_b" in saved
    again = make_pipe()
    Deck(again).add(out)
    for p, value in applied.items():
        assert torch.allclose(_param(again, p), value, atol=1e-6), p
