"""The Python API takes what diffusers' load_lora_weights takes: a file, a folder (+ weight_name), a dict."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from helpers import make_pipe, render
from loradeck.core import Deck, LoraFileError, SpecError


def test_a_state_dict_in_memory_equals_its_file(files):
    from_file, in_memory = make_pipe(), make_pipe()
    Deck(from_file).add(files["k"], name="k", model=0.8)
    deck = Deck(in_memory).add(load_file(files["k"]), name="k", model=0.8)
    assert torch.equal(render(from_file), render(in_memory))
    (view,) = deck.active()
    assert len(view.sha256) == 64 and view.file.startswith("<memory>")
    again = Deck(make_pipe()).add(load_file(files["k"]))
    assert again.stack.adapters[0].sha256 == view.sha256  # same content, same identity: one adapter per branch


def test_network_alphas_scale_an_in_memory_dict_like_alpha_keys(files):
    tensors = load_file(files["k"])
    alphas = {k.removesuffix(".alpha"): float(v) * 2 for k, v in tensors.items() if k.endswith(".alpha")}
    bare = {k: v for k, v in tensors.items() if not k.endswith(".alpha")}
    doubled, reference = make_pipe(), make_pipe()
    Deck(doubled).add(bare, network_alphas=alphas)
    Deck(reference).add(tensors, model=2.0, clip=2.0)
    assert (render(doubled) - render(reference)).abs().max() < 1e-5


def test_a_folder_with_one_file_or_a_weight_name(files, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(files["a"], folder / "style.safetensors")
    alone, named, reference = make_pipe(), make_pipe(), make_pipe()
    Deck(alone).add(str(folder))
    shutil.copy(files["k"], folder / "other.safetensors")
    Deck(named).add(str(folder), weight_name="style.safetensors")
    Deck(reference).add(files["a"])
    assert torch.equal(render(alone), render(reference)) and torch.equal(render(named), render(reference))
    with pytest.raises(LoraFileError, match="holds 2 LoRA files: other.safetensors, style.safetensors.*weight_name"):
        Deck(make_pipe()).add(str(folder))
    with pytest.raises(LoraFileError, match="Pick one of: other.safetensors, style.safetensors"):
        Deck(make_pipe()).add(str(folder), weight_name="../style.safetensors")


@pytest.mark.parametrize("bad", [{}, {"x.lora_A.weight": "not a tensor"}, {3: torch.zeros(1)}])
def test_a_bad_dict_is_a_clear_error(bad):
    pipe = make_pipe()
    before = render(pipe)
    with pytest.raises(SpecError, match="in-memory LoRA"):
        Deck(pipe).add(bad)
    assert torch.equal(render(pipe), before)
