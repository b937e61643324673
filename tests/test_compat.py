"""transformers >= 5.24 with peft < 0.22: transformers' own adapter methods refuse, LoRA Deck's adapters still work.

transformers 5.24 raised ``transformers.integrations.peft.MIN_PEFT_VERSION`` to 0.22.0, which its
``add_adapter``/``load_adapter``/``set_adapter``/... check on every call (diffusers' ``load_lora_weights``
uses them for text encoders). LoRA Deck injects with peft's own functions and never calls them, so the
test below raises the same minimum in the installed transformers and runs text-encoder adapters through
everything. (Checked by hand with transformers 5.24.0 + peft 0.21.2 installed: all five families.)
The test fixtures and the diffusers reference comparisons do use those methods, so the ``[test]`` extra
keeps transformers < 5.24.
"""

from __future__ import annotations

from importlib import metadata

import pytest
import torch
from packaging.version import Version

from helpers import assert_bit_identical, base_weights, render
from loradeck.core import Deck


def _text_encoder_layers(pipe) -> int:
    return sum(1 for _, m in pipe.text_encoder.named_modules() if hasattr(m, "lora_A"))


@pytest.fixture
def transformers_wants_new_peft(monkeypatch):
    """What transformers 5.24 does with peft < 0.22 installed: its adapter methods refuse."""
    from transformers.integrations import peft as transformers_peft

    monkeypatch.setattr(transformers_peft, "MIN_PEFT_VERSION", "0.22.0")  # 5.24's value


def test_the_simulation_makes_transformers_refuse(transformers_wants_new_peft, pipe):
    from peft import LoraConfig

    with pytest.raises(ValueError, match="version of PEFT"):
        pipe.text_encoder.add_adapter(LoraConfig(r=2, target_modules=["q_proj"]))


@pytest.mark.parametrize("name", ["a", "k"])  # diffusers format, kohya format; both with text-encoder modules
def test_text_encoder_adapters_work_where_transformers_refuses(transformers_wants_new_peft, files, pipe, name):
    before, base = base_weights(pipe), render(pipe)
    deck = Deck(pipe).add(files[name], name="x", model=0.0, clip=1.0)
    assert _text_encoder_layers(pipe) and not torch.equal(render(pipe), base)
    deck.set_weights("x", clip=0.0)
    assert torch.equal(render(pipe), base)
    deck.set_weights("x", model=0.7, clip=0.9).fuse()
    fused = render(pipe)
    deck.unfuse()
    assert (render(pipe) - fused).abs().max() < 1e-4
    deck.unload()
    assert_bit_identical(before, base_weights(pipe))
    assert not _text_encoder_layers(pipe)


def test_the_test_environment_can_run_the_reference_comparisons():
    """``.[test]`` must give transformers < 5.24 while peft < 0.22 (see pyproject.toml and .ci/run)."""
    transformers, peft = Version(metadata.version("transformers")), Version(metadata.version("peft"))
    assert transformers < Version("5.24") or peft >= Version("0.22"), (transformers, peft)
