"""Strength schedules over the steps: the written forms, and parity with diffusers driven by
``callback_on_step_end`` + ``set_adapters`` at the same steps."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from family_fixtures import PARAMS, SAVED_TEXT_ENCODERS, diffusers_reference, fresh
from lora_fixtures import save_family_lora
from loradeck.core import Deck, SpecError
from loradeck.core.families import FAMILIES
from loradeck.core.generation.calls import diffusers_call
from loradeck.core.generation.generate import generate
from loradeck.core.stacks.schedules import parse, ramp

TOLERANCE = 2 / 255
STEPS = 5
SCHEDULE = "1.5@0-0.5, ramp(0.6, -0.4)@0.5-1"
# written out by hand: positions 0, 0.25, 0.5, 0.75, 1 for 5 steps
VALUES = (1.5, 1.5, 0.6, 0.1, -0.4)


def test_written_forms_and_values():
    schedule = parse(SCHEDULE)
    assert schedule.values(STEPS) == pytest.approx(VALUES)
    assert parse(schedule.text()) == schedule
    assert ramp(1.0, 0.2).values(3) == pytest.approx((1.0, 0.6, 0.2))
    assert parse("0.8@0-0.3").values(5) == pytest.approx((0.8, 0.8, 0.0, 0.0, 0.0))  # uncovered positions: off
    with pytest.raises(SpecError, match="overlap"):
        parse("1@0-0.6, 0@0.5-1")
    with pytest.raises(SpecError, match="range of positions"):
        parse("1, 0.5@0.5-1")


def test_a_schedule_for_the_text_encoder_is_refused(pipe, files):
    deck = Deck(pipe).add(files["a"], name="a")
    with pytest.raises(SpecError, match="denoiser only"):
        deck.set_weights("a", clip="ramp(1, 0)")


@pytest.fixture(scope="module")
def family_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("schedule_loras")
    return {key: save_family_lora(key, str(root / f"{key}.safetensors"), seed=4)
            for key in ("sd1", "flux", "chroma", "krea2", "qwenimage", "zimage", "flux2")}


def _reference(key: str, path: str, params):
    """diffusers alone: set_adapters before the run, then again after each step for the next step's value."""
    family, encoders = FAMILIES[key], SAVED_TEXT_ENCODERS[key]

    def weights(value):
        return [{family.denoiser: value, **{e: 0.7 for e in encoders}}]

    pipe = diffusers_reference(key, {"s": path}, {"s": weights(VALUES[0])[0]})

    def step_end(pipe, step, timestep, kwargs):
        if step + 1 < STEPS:
            pipe.set_adapters(["s"], weights(VALUES[step + 1]))
        return kwargs

    kwargs = {**family.call(params, lambda step, total: None), "callback_on_step_end": step_end}
    with torch.inference_mode():
        return torch.from_numpy(pipe(**kwargs).images.copy())


@pytest.mark.parametrize("key", ["sd1", "flux", "chroma", "krea2", "qwenimage", "zimage", "flux2"])
def test_schedule_equals_diffusers_set_adapters_between_steps(key, family_files):
    params = dataclasses.replace(PARAMS, steps=STEPS)
    deck = Deck(fresh(key)).add(family_files[key], name="s", model=1.0, clip=0.7)
    deck.set_weights("s", model=SCHEDULE)
    assert [v.schedule for v in deck.active()] == [((FAMILIES[key].denoiser, parse(SCHEDULE).text()),)]
    ours = generate(deck.owner, deck.stack, params).numpy()
    theirs = _reference(key, family_files[key], params).numpy()
    constant = generate(deck.owner, deck.set_weights("s", model=VALUES[0]).stack, params).numpy()
    assert abs(ours - constant).max() > 1e-2  # the schedule changed the image
    assert abs(ours - theirs).max() <= TOLERANCE
    # the layers hold the first step's strengths again afterwards, and the same call gives the same image
    deck.set_weights("s", model=SCHEDULE)
    assert (generate(deck.owner, deck.stack, params).numpy() == ours).all()


def test_schedule_callback_for_direct_pipe_calls(family_files):
    params = dataclasses.replace(PARAMS, steps=STEPS)
    deck = Deck(fresh("sd1")).add(family_files["sd1"], name="s", model=1.0, clip=0.7)
    deck.set_weights("s", model=SCHEDULE)
    kwargs = {**diffusers_call(params, lambda step, total: None),
              "callback_on_step_end": deck.schedule_callback()}
    with torch.inference_mode():
        direct = deck.pipe(**kwargs).images
    assert abs(direct - _reference("sd1", family_files["sd1"], params).numpy()).max() <= TOLERANCE
