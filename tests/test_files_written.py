"""Every file LoRA Deck writes is atomic, readable as the umask allows (0644 under 022), and listed."""

from __future__ import annotations

import json
import os
import stat

import pytest

from loradeck.core.files.atomic import write_atomic
from loradeck.demo.make_loras import family_loras
from loradeck.runner import run_workflow
from loradeck.runner.workflow_file import from_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVE_STACK = os.path.join(ROOT, "example_workflows", "api", "loradeck-save-stack.api.json")


@pytest.fixture
def umask():
    """Run a test under a given umask: ``umask(0o022)``; the process umask is restored afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _files(folder) -> set[str]:
    return {os.path.join(d, f) for d, _, files in os.walk(folder) for f in files}


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_write_honours_the_umask(umask, tmp_path, mask, mode):
    umask(mask)
    path = write_atomic(str(tmp_path / "sub" / "a.bin"), b"data")
    assert _mode(path) == mode and _read(path) == b"data"
    write_atomic(path, lambda f: f.write(b"again"))  # replacing keeps the rule
    assert _mode(path) == mode and _read(path) == b"again"


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_atomic(str(tmp_path / "a.bin"), b"old")

    def fail(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, fail)
    assert _read(path) == b"old" and os.listdir(tmp_path) == ["a.bin"]


def test_run_lists_every_file_it_wrote_png_and_lora_0644(umask, tmp_path):
    with open(SAVE_STACK) as f:
        prompt = json.load(f)
    prompt["4"]["inputs"].update(steps=2, width=64, height=64)
    context = run_workflow(from_data(prompt, "test"), str(tmp_path))
    assert set(context.saved) == _files(tmp_path)
    assert {os.path.splitext(p)[1] for p in context.saved} == {".png", ".safetensors"}
    lora = next(p for p in context.saved if p.endswith(".safetensors"))
    assert lora == str(tmp_path / "loras" / "loradeck" / "demo-stack_00001_.safetensors")
    assert {oct(_mode(p)) for p in context.saved} == {oct(0o644)}


def test_demo_loras_are_0644(umask, tmp_path):
    paths = family_loras("sd1", str(tmp_path / "loras"))
    assert len(paths) == 2 and {oct(_mode(p)) for p in paths} == {oct(0o644)}
