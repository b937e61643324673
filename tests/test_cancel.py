"""Cancel: Generate stops within a step and leaves the pipeline consistent; headless Ctrl-C leaves no partial files."""

from __future__ import annotations

import itertools
import json
import os
import sys
import types

import pytest
import torch
from PIL import Image

from helpers import make_pipe, spec
from loradeck.cli import main as cli_main
from loradeck.core import Deck, GenerateParams, StackSpec, generate
from loradeck.core.api import PipelineHandle
from loradeck.core.stacks.stack_ops import fuse
from loradeck.nodes import NODE_CLASS_MAPPINGS, host
from loradeck.runner import RunContext
from loradeck.runner.image_nodes import SaveImage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = os.path.join(ROOT, "example_workflows", "api", "loradeck-demo.api.json")
PARAMS = GenerateParams("a lighthouse", "fog", seed=3, steps=4, cfg=7.0, width=64, height=64)


class Cancelled(Exception):
    """Stands in for whatever a host raises on cancel."""


def raise_at(step_to_fail: int):
    def on_step(step: int, total: int) -> None:
        if step >= step_to_fail:
            raise Cancelled(f"cancelled at step {step}/{total}")

    return on_step


def _stack(owner, files, fused: bool) -> StackSpec:
    stack = StackSpec().add(spec(owner, files["a"], "a", 0.9, 0.4)).add(spec(owner, files["k"], "k", 0.7, 1.0))
    return fuse(stack) if fused else stack


@pytest.mark.parametrize("fused", [False, True])
def test_a_cancelled_generate_leaves_the_pipeline_consistent(files, fused):
    owner = Deck(make_pipe()).owner
    stack = _stack(owner, files, fused)
    with pytest.raises(Cancelled):
        generate(owner, stack, PARAMS, on_step=raise_at(2))
    fresh = Deck(make_pipe()).owner
    assert torch.equal(generate(owner, stack, PARAMS), generate(fresh, stack, PARAMS))
    assert torch.equal(generate(owner, StackSpec(), PARAMS), generate(fresh, StackSpec(), PARAMS))


class Interrupted(Exception):
    """Stands in for comfy.model_management.InterruptProcessingException."""


@pytest.fixture
def fake_comfy(monkeypatch):
    """ComfyUI's ProgressBar and interrupt check, as nodes/host.progress_reporter uses them."""
    state = types.SimpleNamespace(cancel_after=None, checks=0, bar=[])

    class ProgressBar:
        def __init__(self, total):
            state.bar.append(("total", total))

        def update_absolute(self, value, total=None, preview=None):
            state.bar.append(value)

    def throw_exception_if_processing_interrupted():
        state.checks += 1
        if state.cancel_after is not None and state.checks > state.cancel_after:
            raise Interrupted()

    utils = types.SimpleNamespace(ProgressBar=ProgressBar)
    management = types.SimpleNamespace(
        throw_exception_if_processing_interrupted=throw_exception_if_processing_interrupted)
    monkeypatch.setitem(sys.modules, "comfy", types.SimpleNamespace(utils=utils, model_management=management))
    monkeypatch.setitem(sys.modules, "comfy.utils", utils)
    monkeypatch.setitem(sys.modules, "comfy.model_management", management)
    monkeypatch.setattr(host, "IN_COMFYUI", True)
    return state


def test_cancel_in_comfyui_stops_generate_within_one_step(files, fake_comfy):
    node = NODE_CLASS_MAPPINGS["Generate|LoRADeck"]()
    pipe = make_pipe()
    owner = Deck(pipe).owner
    handle = PipelineHandle(owner, _stack(owner, files, fused=True))
    calls = []
    pipe.unet.register_forward_hook(lambda *a: calls.append(1))
    fake_comfy.cancel_after = 2  # Cancel pressed during step 3
    with pytest.raises(Interrupted):
        node.generate(handle, "a lighthouse", "fog", 3, 6, 7.0, 64, 64, 1)
    assert len(calls) == 3 and fake_comfy.bar == [("total", 6), 1, 2]
    fake_comfy.cancel_after = None
    later = node.generate(handle, "a lighthouse", "fog", 3, 6, 7.0, 64, 64, 1)[0]
    fresh = PipelineHandle(Deck(make_pipe()).owner, handle.stack)
    assert torch.equal(later, node.generate(fresh, "a lighthouse", "fog", 3, 6, 7.0, 64, 64, 1)[0])
    assert fake_comfy.bar[-1] == 6


def _short_demo(tmp_path) -> str:
    """The demo prompt with 3 steps per Generate (same graph, quicker)."""
    with open(API) as f:
        prompt = json.load(f)
    for node in prompt.values():
        if node["class_type"] == "Generate|LoRADeck":
            node["inputs"]["steps"] = 3
    path = tmp_path / "short.api.json"
    path.write_text(json.dumps(prompt))
    return str(path)


def _files(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, names in os.walk(folder) for f in names)


def test_ctrl_c_mid_run_leaves_only_complete_pngs(tmp_path, monkeypatch):
    steps = itertools.count(1)

    def reporter(total):
        def on_step(step, of):
            if next(steps) == 5:  # step 2 of the second Generate
                raise KeyboardInterrupt

        return on_step

    monkeypatch.setattr(host, "progress_reporter", reporter)
    out = tmp_path / "out"
    assert cli_main(["run", _short_demo(tmp_path), "--output-dir", str(out)]) == 130
    written = _files(out)
    assert written == [os.path.join("loradeck-demo", "6-stack-fused_00001_.png")]
    Image.open(out / written[0]).verify()


def test_ctrl_c_while_writing_a_png_leaves_nothing(tmp_path, monkeypatch):
    def interrupted_save(image, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    node = SaveImage(RunContext(str(tmp_path), {}, {}))
    with pytest.raises(KeyboardInterrupt):
        node.save_images(torch.rand(2, 8, 8, 3), "sub/x")
    assert _files(tmp_path) == []
