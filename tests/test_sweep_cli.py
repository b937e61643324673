"""``loradeck sweep`` as a user runs it: Ctrl-C mid-sweep (SIGINT to the whole process group, as a terminal
sends it), then the same command again renders only the rest, and a cell's PNG run by ``loradeck run`` gives
the same file byte for byte. Each command starts its own local Ray with 2 CPU workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lora_fixtures import save_diffusers_lora

pytest.importorskip("ray")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


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


def test_ctrl_c_stops_cleanly_and_the_same_command_finishes_the_rest(tmp_path):
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
    first = subprocess.Popen(_command("sweep", str(spec)), cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while len(_journal(out)) < 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, first.communicate()
        os.killpg(first.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        stdout, stderr = first.communicate(timeout=180)
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

    second = subprocess.run(_command("sweep", str(spec), "--no-progress"), cwd=tmp_path, env=ENV,
                            capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.split() == [str(out / "report.html"), str(out / "manifest.json")]
    journal = _journal(out)
    assert len(journal) == len({r["key"] for r in journal}) == 12  # the rest only: no cell rendered twice
    assert [r["key"] for r in journal[: len(done)]] == [r["key"] for r in done]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"cells": 12, "unique": 12, "ok": 12, "failed": 0, "pending": 0}

    cell = manifest["cells"][-1]
    rerun = subprocess.run(_command("run", str(out / cell["image"]), "--models-dir", str(tmp_path / "models"),
                                    "--output-dir", str(tmp_path / "rerun")),
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    written = Path(rerun.stdout.split()[0])
    assert written.read_bytes() == (out / cell["image"]).read_bytes()
