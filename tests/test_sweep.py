"""``loradeck sweep`` on a local Ray with 2 CPU workers and the tiny SD model.

One sweep of a folder of "epochs" (three good LoRA files and three hostile ones: a truncated file, one holding
NaN, one made for SDXL) plus no LoRA, x two strengths (one a schedule) x two seeds, with a prompt carrying HTML
that the report must show as text. Checked: every rendered cell is byte for byte the PNG the headless runner
writes for that cell's workflow; the hostile files fail only their own cells, with the reason in the manifest;
each worker read each file once; a second run renders nothing, a deleted image is rendered again alone; a worker
killed mid-sweep loses no cell; the HTML report opens in Chromium without errors and shows every cell
(screenshot, compared pixel by pixel with the cells' PNGs). The command line and Ctrl-C: test_sweep_cli.py.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from helpers import a1111_shorthash, runtime_for
from lora_fixtures import save_diffusers_lora, save_kohya_lora, write_sdxl_shaped

ray = pytest.importorskip("ray")

from loradeck import sweep  # noqa: E402
from loradeck.core.errors import LoraDeckError, SpecError  # noqa: E402
from loradeck.runner import run_workflow  # noqa: E402
from loradeck.runner.workflow_file import Workflow  # noqa: E402

GOOD = ("epoch-1", "epoch-2", "epoch-10")  # natural order: 10 after 2
HOSTILE = ("epoch-3-truncated", "epoch-4-nan", "epoch-5-sdxl")
XSS = '<img src=x onerror="window.__xss=1">'


def write_models(root: Path) -> Path:
    """models/loras/epochs/: three good files (two diffusers, one kohya) and three hostile ones."""
    epochs = root / "loras" / "epochs"
    epochs.mkdir(parents=True)
    save_diffusers_lora(str(epochs / "epoch-1.safetensors"), seed=11)
    save_diffusers_lora(str(epochs / "epoch-2.safetensors"), seed=12)
    save_kohya_lora(str(epochs / "epoch-10.safetensors"), seed=13)
    good = (epochs / "epoch-1.safetensors").read_bytes()
    (epochs / "epoch-3-truncated.safetensors").write_bytes(good[: len(good) // 3])
    tensors = load_file(str(epochs / "epoch-2.safetensors"))
    first = sorted(tensors)[0]
    tensors[first] = tensors[first].clone()
    tensors[first].view(-1)[0] = float("nan")
    save_file(tensors, str(epochs / "epoch-4-nan.safetensors"))
    write_sdxl_shaped(str(epochs / "epoch-5-sdxl.safetensors"), seed=5)
    return root


def write_spec(path: Path, models: Path, output: Path, lora: str, prompt: str = f"a lighthouse {XSS}") -> Path:
    path.write_text(f"""
name = "{path.stem}"
model = "tiny-sd (built-in)"
models_dir = {json.dumps(str(models))}
output = {json.dumps(str(output))}
[generate]
prompt = {json.dumps(prompt)}
negative_prompt = "blurry"
steps = 3
width = 64
height = 64
[axes]
lora = {lora}
strength = [0.5, "ramp(1, 0)"]
seed = [1, 2]
""")
    return path


SWEEP_SECONDS = 600  # a sweep below that has not finished by then has hung: the test fails instead of waiting


@contextlib.contextmanager
def deadline(seconds: float = SWEEP_SECONDS):
    """Fail (not hang) when the block takes longer than ``seconds``: SIGALRM raises in the main thread, where
    the sweep's driver waits on Ray a second at a time, and the sweep stops its workers on the way out."""
    def expired(signum, frame):
        pytest.fail(f"the sweep did not finish within {seconds} s", pytrace=True)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_sweep(spec, **options):
    """sweep.run on the session's local Ray (tests/conftest.py: 2 CPUs; 2 workers of 1 CPU and 1 torch thread
    unless ``workers`` says otherwise), within the deadline."""
    with deadline():
        return sweep.run(str(spec), progress=False, **options)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return write_models(tmp_path_factory.mktemp("sweep-models"))


@pytest.fixture(scope="module")
def epochs_sweep(local_ray, models, tmp_path_factory):
    """The main sweep: 7 LoRA values (6 files + none) x 2 strengths x 2 seeds = 28 cells, 26 distinct."""
    folder = tmp_path_factory.mktemp("sweep-epochs")
    spec = write_spec(folder / "epochs.toml", models, folder / "out", '[{ folder = "epochs" }, "none"]')
    records = []
    result = run_sweep(spec, on_result=records.append)
    manifest = json.loads(Path(result.manifest).read_text())
    return spec, result, manifest, records


@pytest.fixture
def one_thread():
    """Reference renders with the workers' thread count (the order of float sums depends on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_sweep_renders_every_good_cell_and_fails_only_the_hostile_files(epochs_sweep):
    _, result, manifest, records = epochs_sweep
    axes = {a["name"]: [v["label"] for v in a["values"]] for a in manifest["axes"]}
    assert axes["lora"] == [*GOOD[:2], "epoch-3-truncated", "epoch-4-nan", "epoch-5-sdxl", "epoch-10", "none"]
    assert (result.cells, result.unique) == (28, 26)  # "none" x 2 strengths is one configuration
    assert (result.ok, result.failed, result.pending) == (14, 12, 0)
    assert result.rendered == len(records) == 26 and result.restarts == 0
    by_lora: dict[str, set] = {}
    for cell in manifest["cells"]:
        by_lora.setdefault(cell["values"]["lora"], set()).add(cell["status"])
    assert {name: by_lora[name] for name in (*GOOD, "none")} == {name: {"ok"} for name in (*GOOD, "none")}
    assert {name: by_lora[name] for name in HOSTILE} == {name: {"failed"} for name in HOSTILE}
    reasons = {c["values"]["lora"]: c["error"] for c in manifest["cells"] if c["status"] == "failed"}
    for name in HOSTILE:
        assert f"{name}.safetensors" in reasons[name] and "Traceback" not in reasons[name]
    assert "not finite" in reasons["epoch-4-nan"] or "NaN" in reasons["epoch-4-nan"], reasons["epoch-4-nan"]
    assert "SDXL" in reasons["epoch-5-sdxl"] or "sdxl" in reasons["epoch-5-sdxl"].lower()


def test_the_manifest_gives_each_cell_its_parameters_hashes_and_a1111_text(epochs_sweep, models):
    _, result, manifest, _ = epochs_sweep
    out = Path(result.output)
    cell = next(c for c in manifest["cells"] if c["values"] == {"lora": "epoch-10", "strength": "ramp(1, 0)",
                                                                 "seed": "2"})
    sha = __import__("hashlib").sha256((models / "loras/epochs/epoch-10.safetensors").read_bytes()).hexdigest()
    assert cell["files"] == [{"name": "epochs/epoch-10.safetensors", "sha256": sha, "autov2": sha[:10]}]
    assert cell["parameters"]["generate"]["seed"] == 2 and cell["parameters"]["model"] == "tiny-sd (built-in)"
    assert cell["parameters"]["weights"] == '"epoch-10": ramp(1, 0)\n'
    # the A1111 text names the file by the hash A1111 and Forge relink by (12 hex digits of the tensor bytes' SHA-256)
    assert f'Lora hashes: "epoch-10: {a1111_shorthash(str(models / "loras/epochs/epoch-10.safetensors"))}"' \
        in cell["a1111"]
    assert 'LoRA Deck: "epoch-10: clip=1 model=[ramp(1, 0)]"' in cell["a1111"]
    image = out / cell["image"]
    assert image.name.startswith("lora-epoch-10_strength-ramp-1-0_seed-2__") and image.is_file()
    with Image.open(image) as png:
        assert png.text["parameters"] == cell["a1111"]
        assert json.loads(png.text["prompt"]) == cell["workflow"]  # `loradeck run` this PNG renders the cell
    assert __import__("hashlib").sha256(image.read_bytes()).hexdigest() == cell["image_sha256"]
    assert sorted(p.name for p in (out / "sheets").iterdir()) == ["lora-x-seed", "lora-x-strength",
                                                                 "strength-x-seed"]
    assert len(list((out / "sheets" / "lora-x-strength").glob("*.png"))) == 2  # one per seed
    assert not list(out.rglob("*.part"))


def test_each_cell_equals_the_headless_runner_bit_for_bit(epochs_sweep, models, tmp_path, one_thread):
    """Every rendered cell's PNG is byte for byte what the runner writes for the cell's workflow (one runtime
    for all of them, in another order than the workers': state left by earlier cells changes nothing)."""
    _, result, manifest, _ = epochs_sweep
    runtime = runtime_for(str(models), str(tmp_path))
    done = [c for c in manifest["cells"] if c["status"] == "ok"]
    seen = set()
    for cell in reversed(done):
        if cell["key"] in seen:
            continue
        seen.add(cell["key"])
        context = run_workflow(Workflow(cell["workflow"], None, cell["name"]), str(tmp_path / cell["key"]),
                               runtime=runtime)
        assert len(context.saved) == 1
        assert Path(context.saved[0]).read_bytes() == (Path(result.output) / cell["image"]).read_bytes(), cell["name"]
    assert len(seen) == 14


def test_each_worker_reads_each_file_once(epochs_sweep):
    """Per worker, each file it needed was read from disk once (the first cell that loads it), whatever the
    number of its cells; the truncated and NaN files are refused while being read, so they count no read."""
    _, result, manifest, records = epochs_sweep
    workers = manifest["run"]["workers"]
    assert len(workers) == 2 and all(w["threads"] == 1 and w["device"] == "cpu" for w in workers)
    assert sum(w["cells"] for w in workers) == 26
    lora = {c["key"]: c["values"]["lora"] for c in manifest["cells"]}
    readable = {*GOOD, "epoch-5-sdxl"}  # the SDXL file reads fine; it fails when matched with the model
    for worker in workers:
        mine = [r for r in records if r["worker"] == worker["pid"]]
        assert worker["reads"] == sum(r["reads"] for r in mine) == len({lora[r["key"]] for r in mine} & readable)
        cells_per_file = collections.Counter(lora[r["key"]] for r in mine)
        assert max(cells_per_file.values()) > 1  # so "once" means once for several cells


def test_a_second_run_renders_nothing_and_a_lost_image_alone(epochs_sweep):
    spec, first, manifest, _ = epochs_sweep
    again = run_sweep(spec)
    assert (again.rendered, again.skipped, again.ok, again.failed) == (0, 26, 14, 12)
    assert again.workers == []  # nothing to render: no worker was started
    lost = next(c for c in manifest["cells"] if c["status"] == "ok")
    image = Path(first.output) / lost["image"]
    before = image.read_bytes()
    image.unlink()
    third = run_sweep(spec, retry_failed=True, workers=1)  # and the failed cells once more (1 worker will do)
    assert (third.rendered, third.ok, third.failed) == (1 + 12, 14, 12)
    assert image.read_bytes() == before


def test_a_worker_killed_mid_sweep_loses_no_cell(local_ray, epochs_sweep, models, tmp_path):
    """SIGKILL one worker as the first cell comes back: its cells in flight go to the queue again, a new worker
    takes its place, and every cell ends up rendered exactly as in the first sweep (same content keys)."""
    _, first, first_manifest, _ = epochs_sweep
    spec = write_spec(tmp_path / "killed.toml", models, tmp_path / "out",
                      '["epochs/epoch-1.safetensors", "epochs/epoch-2.safetensors"]')
    killed = []

    def kill_first(record):
        if not killed:
            killed.append(record["worker"])
            os.kill(record["worker"], signal.SIGKILL)

    result = run_sweep(spec, on_result=kill_first)
    assert killed and result.restarts >= 1
    assert (result.ok, result.failed, result.pending) == (8, 0, 0)
    journal = [json.loads(line) for line in (tmp_path / "out" / "cells.jsonl").read_text().splitlines()]
    assert len(journal) == len({r["key"] for r in journal}) == 8  # each cell recorded once
    assert any(r["attempts"] > 1 for r in journal)  # a cell in flight on the killed worker was rendered again
    assert killed[0] not in {r["worker"] for r in journal[1:] if r["attempts"] > 1}
    earlier = {c["key"]: c for c in first_manifest["cells"]}
    for record in journal:
        assert (tmp_path / "out" / record["image"]).read_bytes() == \
            (Path(first.output) / earlier[record["key"]]["image"]).read_bytes()


def test_workers_that_cannot_start_stop_the_sweep_in_time(local_ray, models, tmp_path):
    """A worker asking for more than the cluster has (3 CPUs of 2) never starts: the sweep gives up after
    start_timeout with the reason, having written what it has (every cell pending), instead of waiting forever."""
    spec = write_spec(tmp_path / "big.toml", models, tmp_path / "out", '["epochs/epoch-1.safetensors"]')
    with pytest.raises(LoraDeckError, match=r"1 of 1 sweep workers had not started after 3 s \(each needs 3 CPU"):
        run_sweep(spec, workers=1, threads=3, start_timeout=3)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"] == {"cells": 4, "unique": 4, "ok": 0, "failed": 0, "pending": 4}


def test_spec_problems_are_listed_before_anything_runs(models, tmp_path):
    spec = write_spec(tmp_path / "bad.toml", models, tmp_path / "out", '["epochs/epoch-1.safetensors", "nope"]')
    spec.write_text(spec.read_text().replace("steps = 3", "steps = 5000"))
    with pytest.raises(SpecError) as failed:
        run_sweep(spec)
    text = str(failed.value)
    assert text.startswith("the sweep has 2 problems; nothing was run")
    assert "'nope'" in text and "steps = 5000: above the maximum 1000 (4 cells" in text
    assert not (tmp_path / "out" / "cells.jsonl").exists()
    for bad, message in (({"model": "tiny-sd (built-in)", "axes": {"strength": [1]}}, "no lora axis"),
                         ({"model": "tiny-sd (built-in)", "axes": {"sed": [1]}}, "unknown key 'sed'"),
                         ({"model": "tiny-sd (built-in)", "axes": {"seed": [1.5]}}, "expected a whole number"),
                         ({"axes": {}}, "either a model"),
                         ({"model": "x", "generate": {"batch_size": 2}}, "unknown key 'batch_size'")):
        with pytest.raises(SpecError, match=message):
            sweep.from_dict(bad)


def test_importing_the_sweep_loads_neither_ray_nor_torch():
    code = ("import sys, loradeck, loradeck.sweep, loradeck.cli; "
            "print(sorted(m for m in ('ray', 'torch', 'diffusers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "[]", done.stderr[-2000:]


# -- the HTML report in a real browser ------------------------------------------------------------------------
CHROMIUM = os.environ.get("LORADECK_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--force-color-profile=srgb"]


def _browser_or_skip():
    required = os.environ.get("LORADECK_REQUIRE_BROWSER") == "1"
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    reason = ("playwright is not installed" if sync_api is None else
              f"no chromium at {CHROMIUM}" if not os.path.exists(CHROMIUM) else None)
    if reason:
        if required:
            pytest.fail(f"{reason} (LORADECK_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(reason)
    return sync_api


def test_the_report_opens_in_chromium_and_shows_every_cell(epochs_sweep):
    import numpy as np

    sync_api = _browser_or_skip()
    _, result, manifest, _ = epochs_sweep
    out = Path(result.output)
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
        page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"failed to load {r.url}"))
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        figures = page.evaluate("""[...document.querySelectorAll('figure.cell')].map(f => {
            const img = f.querySelector('img'), box = (img || f).getBoundingClientRect();
            return {key: f.dataset.key, status: f.dataset.status, text: f.innerText,
                    loaded: img ? img.complete && img.naturalWidth > 0 : null, src: img && img.getAttribute('src'),
                    x: box.x + scrollX, y: box.y + scrollY, w: box.width, h: box.height};
        })""")
        assert page.evaluate("window.__xss") is None
        assert XSS in page.inner_text("body") or XSS in page.evaluate(
            "[...document.querySelectorAll('pre')].map(p => p.textContent).join()")
        shots = Path(os.environ.get("LORADECK_TEST_OUTPUT") or Path(__file__).resolve().parent / "_output")
        shots.mkdir(parents=True, exist_ok=True)  # where the browser tests keep their screenshots
        shot = shots / "sweep-report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == []
    assert len(figures) == len(manifest["cells"]) == 28  # every cell, duplicates too, in its table
    assert sorted(f["key"] for f in figures) == sorted(c["key"] for c in manifest["cells"])
    statuses = {c["key"]: c for c in manifest["cells"]}
    screen = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    for figure in figures:
        cell = statuses[figure["key"]]
        assert figure["status"] == cell["status"]
        if cell["status"] != "ok":
            assert figure["loaded"] is None and cell["error"][:40] in " ".join(figure["text"].split())
            continue
        assert figure["loaded"] and figure["src"] == cell["image"]
        with Image.open(out / cell["image"]) as png:
            expected = np.asarray(png.convert("RGB")).astype(int)
        x, y = round(figure["x"]), round(figure["y"])
        shown = screen[y: y + expected.shape[0], x: x + expected.shape[1]]
        assert shown.shape == expected.shape, figure
        assert np.abs(shown - expected).max() <= 2, (cell["name"], np.abs(shown - expected).max())



def test_a_base_workflow_is_swept_through_its_generate_node(tmp_path, one_thread):
    """A saved graph as the base (the img2img example, UI format): the chosen Generate node and what it depends
    on (pipeline, its LoRA, Load Image) are kept, the other branch is dropped, the weights go in front of that
    Generate, and the axes change its inputs. Planned without Ray; one cell rendered by the runner."""
    from loradeck.core.runtime import Runtime
    from loradeck.nodes import host
    from loradeck.sweep import cells

    root = Path(__file__).resolve().parents[1]
    spec = sweep.from_dict({
        "workflow": str(root / "example_workflows" / "loradeck-img2img.json"), "node": 4,
        "output": str(tmp_path / "out"), "generate": {"steps": 4},
        "axes": {"strength": {"adapter": "style", "values": [0.3, "model=1, clip=0"]}, "denoise": [0.5, 0.75]}})
    plan = cells.plan(spec, Runtime(folders=host.headless_folders(None, str(tmp_path))))
    assert [c.labels for c in plan.cells] == [("0.3", "0.5"), ("0.3", "0.75"), ("model=1, clip=0", "0.5"),
                                               ("model=1, clip=0", "0.75")]
    prompt = plan.cells[1].prompt
    kinds = {i: n["class_type"] for i, n in prompt.items()}
    assert kinds == {"1": "LoadPipeline|LoRADeck", "2": "LoadLoRA|LoRADeck", "3": "LoadImage",
                     "4": "Generate|LoRADeck", "9": "SetAdapterWeights|LoRADeck", "10": "SaveImage|LoRADeck"}
    assert prompt["9"]["inputs"] == {"weights": '"style": 0.3\n', "pipeline": ["2", 0]}
    generate = prompt["4"]["inputs"]
    assert generate["pipeline"] == ["9", 0] and generate["image"] == ["3", 0]
    assert (generate["denoise"], generate["steps"], generate["scheduler"]) == (0.75, 4, "DPM++ 2M Karras")
    assert len({c.key for c in plan.cells}) == 4
    with host.using(runtime_for(None, str(tmp_path))) as runtime:
        context = run_workflow(Workflow(prompt, None, "cell"), str(tmp_path / "run"), runtime=runtime)
    with Image.open(context.saved[0]) as png:
        text = png.text["parameters"]
        assert png.size == (128, 128)  # the input image's size
    assert "Denoising strength: 0.75" in text and 'LoRA Deck: "style: clip=0.3 model=0.3"' in text


def test_the_progress_line_shows_the_count_the_rate_and_an_eta(monkeypatch):
    from loradeck.sweep import progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()
    bar = progress.Progress(10, skipped=4, stream=stream, every=0)
    bar.start("2 workers")
    clock[0] += 30  # worker start-up: left out of the rate
    bar.add(ok=True)
    clock[0] += 2
    bar.add(ok=False)
    clock[0] += 2
    bar.add(ok=True)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[............................] 0/10 cells  0%  elapsed 0:00  ETA --  4 done before  2 workers"
    assert lines[-1] == ("[########....................] 3/10 cells  30%  elapsed 0:34  ETA 0:14  1 failed  "
                         "4 done before  2 workers")  # 2 s per cell since the first one, 7 cells left
    assert progress.duration(3725) == "1:02:05"


def test_a_stack_a_weights_axis_and_prompt_tags_make_each_cells_workflow(models, tmp_path):
    """Planned without Ray: the [[stack]] under every cell, a strength axis on one of its adapters, a weights axis
    of whole texts, and a prompt tag whose file joins the cell's files (and its content key)."""
    from loradeck.sweep import cells

    spec = sweep.from_dict({
        "model": "tiny-sd (built-in)", "models_dir": str(models), "output": str(tmp_path / "out"),
        "stack": [{"lora": "epochs/epoch-1.safetensors", "strength_model": 0.7, "name": "base style"}],
        "weights": '"base style": clip=0.2',
        "generate": {"prompt": "a cat <lora:epochs/epoch-2:0.5>", "steps": 2},
        "axes": {"strength": {"adapter": "base style", "values": [0.3, "ramp(1, 0)"]},
                 "weights": [{"label": "plain", "value": ""}, {"label": "off", "value": '"base style": off'}]}})
    plan = cells.plan(spec, runtime_for(str(models), str(tmp_path)))
    assert [c.labels for c in plan.cells] == [("0.3", "plain"), ("0.3", "off"), ("ramp(1, 0)", "plain"),
                                               ("ramp(1, 0)", "off")]
    prompt = plan.cells[3].prompt
    assert [n["class_type"] for n in prompt.values()] == [
        "LoadPipeline|LoRADeck", "LoadLoRA|LoRADeck", "SetAdapterWeights|LoRADeck", "Generate|LoRADeck",
        "SaveImage|LoRADeck"]
    assert prompt["2"]["inputs"]["adapter_name"] == "base style" and prompt["2"]["inputs"]["strength_model"] == 0.7
    assert prompt["4"]["inputs"]["weights"] == '"base style": clip=0.2\n"base style": off\n"base style": ramp(1, 0)\n'
    names = [name for name, _ in plan.cells[0].files]
    assert names == ["epochs/epoch-1.safetensors", "epochs/epoch-2.safetensors"]  # the tag's file is there too
    assert len({c.key for c in plan.cells}) == 4
