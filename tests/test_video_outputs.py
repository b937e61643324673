"""Generic video plumbing, checked without a video model: Generate's frames as one IMAGE batch, num_frames for
image families, a family's refusal of a mode its loaded model cannot run, and the headless runner's stand-ins for
ComfyUI's Save Animated WEBP, Create Video and Save Video (the Wan tests run the video example end to end)."""

from __future__ import annotations

import dataclasses
import logging
import types

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import make_pipe
from loradeck.core import Deck, GenerateParams, SpecError, StackSpec, generate
from loradeck.core.generation.generate import output_images, plan
from loradeck.runner import video_nodes
from loradeck.runner.context import RunContext

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


def _context(tmp_path) -> RunContext:
    return RunContext(str(tmp_path), {"1": {"class_type": "x"}}, {"workflow": {"nodes": []}})


def test_save_animated_webp_writes_every_frame_as_comfyui_does(tmp_path):
    frames = torch.rand(4, 24, 32, 3)
    out = video_nodes.SaveAnimatedWEBP(_context(tmp_path)).save_images(
        frames, "clips/run", 8.0, True, 80, "fastest", prompt={"1": {}}, extra_pnginfo={"workflow": {"nodes": []}})
    (entry,) = out["ui"]["images"]
    assert (entry["filename"], entry["subfolder"], out["ui"]["animated"]) == ("run_00001_.webp", "clips", [True])
    webp = Image.open(tmp_path / "clips" / "run_00001_.webp")
    assert (webp.n_frames, webp.size) == (4, (32, 24))
    webp.seek(2)
    lossless = np.asarray(webp.convert("RGB"), dtype=np.int16)
    assert np.abs(lossless - np.clip(255.0 * frames[2].numpy(), 0, 255).astype(np.int16)).max() <= 1
    exif = webp.getexif()
    assert exif[0x0110] == 'prompt:{"1": {}}' and exif[0x010F].startswith("workflow:")
    again = video_nodes.SaveAnimatedWEBP(_context(tmp_path)).save_images(frames, "clips/run")
    assert again["ui"]["images"][0]["filename"] == "run_00002_.webp"  # ComfyUI's counter


def test_save_video_writes_an_mp4_with_pyav_or_says_how_to_get_it(tmp_path, monkeypatch, caplog):
    video = video_nodes.CreateVideo().create(torch.rand(5, 16, 24, 3), 12.0)[0]
    assert video.get_dimensions() == (24, 16)
    if video_nodes.have_av():
        import av

        out = video_nodes.SaveVideo(_context(tmp_path)).save_video(video, "video/clip", prompt={"1": {}},
                                                                   extra_pnginfo={"workflow": {"nodes": []}})
        path = tmp_path / "video" / out["ui"]["images"][0]["filename"]
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and stream.average_rate == 12
            assert len(list(container.decode(video=0))) == 5
            assert container.metadata["prompt"] == '{"1": {}}' and "workflow" in container.metadata
    monkeypatch.setattr(video_nodes, "have_av", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert video_nodes.SaveVideo(_context(tmp_path / "none")).save_video(video) == {"ui": {}}
    assert "pip install av" in caplog.text and not (tmp_path / "none").exists()


def test_the_runner_knows_the_video_nodes_and_their_widget_order():
    from loradeck.runner.registry import CLASSES, widget_names

    assert widget_names(CLASSES["SaveAnimatedWEBP"]) == ["filename_prefix", "fps", "lossless", "quality", "method"]
    assert widget_names(CLASSES["CreateVideo"]) == ["fps"]
    assert widget_names(CLASSES["SaveVideo"]) == ["filename_prefix", "format", "codec"]
