"""``loradeck sweep`` as a user runs it: Ctrl-C mid-sweep (SIGINT to the whole process group, as a terminal
sends it, its own local Ray included), then the same command with ``--address`` joining a running Ray (the
session's, tests/conftest.py) renders only the rest, and a cell's PNG run as ``loradeck run`` runs it gives the
same file byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lora_fixtures import save_diffusers_lora

pytest.importorskip("ray")

from loradeck.runner import run_workflow  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env() -> dict:
    """The commands' environment: this process's now, after the session's Ray started (so RAY_AUTH_MODE is what
    that Ray runs with: a process joining it by address needs it), offline, one thread."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "loradeck.cli", *args]


def _journal(folder: Path) -> list[dict]:
    path = folder / "cells.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_sweep_help_answers_without_torch_or_ray():
    code = ("import contextlib, io, sys\nfrom loradeck.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['sweep', '--help'])\n"
            "print(sorted(m for m in ('ray', 'torch', 'diffusers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stderr[-2000:]


def test_ctrl_c_stops_cleanly_and_the_same_command_finishes_the_rest(local_ray, tmp_path):
    loras = tmp_path / "models" / "loras"
    loras.mkdir(parents=True)
    save_diffusers_lora(str(loras / "style-a.safetensors"), seed=21)
    save_diffusers_lora(str(loras / "style-b.safetensors"), seed=22)
    out = tmp_path / "out"
    spec = tmp_path / "cli.json"  # JSON this time (the other tests write TOML)
    spec.write_text(json.dumps({
        "model": "tiny-sd (built-in)", "models_dir": "models", "output": "out",  # relative to the spec
        "generate": {"prompt": "a lighthouse", "steps": 3, "width": 64, "height": 64},
        "axes": {"lora": ["style-a.safetensors", "style-b.safetensors"], "strength": [0.5, 1],
                 "seed": [1, 2, 3]}}))
    first = subprocess.Popen(_command("sweep", str(spec)), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(_journal(out)) < 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, first.communicate()
        os.killpg(first.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 130, stderr[-3000:]
    assert "interrupted:" in stderr and "run the same command again" in stderr and "Traceback" not in stderr
    done = _journal(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["interrupted"] is True and 2 <= len(done) < 12
    assert manifest["counts"]["ok"] == len(done) and manifest["counts"]["pending"] == 12 - len(done)
    assert all((out / r["image"]).is_file() for r in done)
    assert not list(out.rglob("*.part")) and (out / "report.html").is_file()

    # the rest, on a Ray that is already running (the first command's own Ray went with it)
    second = subprocess.run(_command("sweep", str(spec), "--no-progress", "--address", local_ray), cwd=tmp_path,
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.split() == [str(out / "report.html"), str(out / "manifest.json")]
    journal = _journal(out)
    assert len(journal) == len({r["key"] for r in journal}) == 12  # the rest only: no cell rendered twice
    assert [r["key"] for r in journal[: len(done)]] == [r["key"] for r in done]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"cells": 12, "unique": 12, "ok": 12, "failed": 0, "pending": 0}

    cell = manifest["cells"][-1]  # what `loradeck run out/images/CELL.png` does, in this process (1 torch thread)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rerun = run_workflow(str(out / cell["image"]), str(tmp_path / "rerun"), str(tmp_path / "models"))
    finally:
        torch.set_num_threads(threads)
    assert Path(rerun.saved[0]).read_bytes() == (out / cell["image"]).read_bytes()
