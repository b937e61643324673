"""Generic video plumbing, checked without a video model: Generate's frames as one IMAGE batch, num_frames for
image families, a family's refusal of a mode its loaded model cannot run (the Wan tests run videos end to end)."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest

from helpers import make_pipe
from loradeck.core import Deck, GenerateParams, SpecError, StackSpec, generate
from loradeck.core.generation.generate import output_images, plan

PARAMS = GenerateParams("a lighthouse", seed=1, steps=2, width=64, height=64)


def test_video_frames_become_one_image_batch_video_after_video():
    frames = np.arange(2 * 3 * 4 * 5 * 3, dtype=np.float32).reshape(2, 3, 4, 5, 3)  # 2 videos of 3 frames
    images = output_images(types.SimpleNamespace(frames=frames))
    assert images.shape == (6, 4, 5, 3) and np.array_equal(images[3], frames[1, 0])
    pictures = np.zeros((2, 4, 5, 3), dtype=np.float32)
    assert output_images(types.SimpleNamespace(images=pictures)) is pictures


def test_num_frames_is_for_video_families_only():
    with pytest.raises(SpecError, match="Stable Diffusion 1.x/2.x pipelines make images, not videos"):
        generate(Deck(make_pipe()).owner, StackSpec(), dataclasses.replace(PARAMS, num_frames=9))
    for bad in (0, -1, 1.5, True, 10**6):
        with pytest.raises(SpecError, match="num_frames must be a whole number"):
            dataclasses.replace(PARAMS, num_frames=bad)


def test_a_family_refuses_a_mode_its_loaded_model_cannot_run():
    deck = Deck(make_pipe())
    row = dataclasses.replace(deck.owner.family, cannot_run=lambda pipe, mode: f"no {mode} on {type(pipe).__name__}")
    deck.owner.family = row
    with pytest.raises(SpecError, match="no text-to-image on StableDiffusionPipeline"):
        plan(deck.owner, PARAMS)
