"""The Set Adapter Weights text: every form parses, every mistake names its line."""

from __future__ import annotations

import pytest

from loradeck.core.errors import SpecError
from loradeck.core.families.sd1 import FAMILY as SD1
from loradeck.core.stacks.weights_text import parse


def test_weights_text_forms():
    lines = parse("# comment\nstyle: 0.8\n\ndetail: model=0.6, clip=0.3\n"
                  "x: unet=0.5, text_encoder=0.1\nold: off\n\"odd: name\": 1", SD1)
    assert [(ln.name, dict(ln.weights), ln.enabled) for ln in lines] == [
        ("style", {"model": 0.8, "clip": 0.8}, None),
        ("detail", {"model": 0.6, "clip": 0.3}, None),
        ("x", {"unet": 0.5, "text_encoder": 0.1}, None),
        ("old", {}, False),
        ("odd: name", {"model": 1.0, "clip": 1.0}, None),
    ]


@pytest.mark.parametrize("text,message", [
    ("style 0.8", "line 1: expected 'adapter name: weight'"),
    ("\nstyle: lots", "line 2: expected a number, got 'lots'"),
    ("style: text_encoder_2=0.5", "line 1: 'text_encoder_2=0.5' should be one of model, clip, unet, text_encoder"),
    ("style: lbw=1,0,1", "line 1: lbw: Stable Diffusion 1.x/2.x takes 17 or 26 values"),
    ("style: up.block_1=[0.4,x]", "line 1, up.block_1: expected a number, got 'x'"),
    ("style: nan", "line 1"),
    ("style: 1e9", "finite number within"),
])
def test_weights_text_errors_name_the_line(text, message):
    with pytest.raises(SpecError, match=message):
        parse(text, SD1)
