"""loradeck sweep: a 64-cell sweep on 2 local Ray workers vs the same 64 cells run one after another in one process.

    python bench/bench_sweep.py                    # tiny SD, 64x64, 8 steps
    python bench/bench_sweep.py --size 128 --steps 12

Both sides render each cell the same way: its workflow through the headless runner against a runtime that keeps
the pipeline loaded and the LoRA files in the store (``sweep.worker.SweepWorker``), one torch thread each. The
sequential side is one such worker in this process, taking the cells in the spec's order (a LoRA file's 16
cells in a row); the sweep side is ``loradeck.sweep.run`` with 2 workers of 1 CPU on a local Ray it starts.

Reported: throughput of each side (the sweep's while rendering, and end to end with Ray's and the workers'
start-up), and the **switching overhead per cell**: the time a cell spends going from the previous cell's LoRA
configuration to its own (its Load LoRA and Set Adapter Weights nodes: file lookup, store, checks; and
``PipelineOwner.apply``: injection, scale writes, snapshot), as a share of one cell's time. Target: < 5 %,
measured on the sweep's workers. Also shown: everything in a cell that is not the denoising call (the runner's
validation, the PNG), each worker's first cell (its first LoRA injection), and whether the sweep's 64 images
equal the sequential ones byte for byte. Writes nothing into the repository (a temporary folder). Exit status 1
when the target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Contention, log, start_up, write_lora  # noqa: E402

STRENGTHS = (0.25, 0.5, 0.75, 1.0)
PROMPTS = ("a lighthouse on a cliff at sunset", "a red house by a lake")
SEEDS = (1, 2)
EPOCHS = 4
TARGET = 0.05


def make_models(folder: str) -> str:
    """models/loras/epochs/epoch-N.safetensors: rank-32 diffusers-format files for the tiny SD model."""
    from loradeck.core.families import tiny_pipeline

    epochs = os.path.join(folder, "models", "loras", "epochs")
    os.makedirs(epochs)
    pipe = tiny_pipeline("sd1")
    for n in range(1, EPOCHS + 1):
        write_lora(pipe, os.path.join(epochs, f"epoch-{n}.safetensors"), seed=n)
    return os.path.join(folder, "models")


def spec_for(folder: str, models: str, size: int, steps: int) -> dict:
    return {"name": "bench", "model": "tiny-sd (built-in)", "models_dir": models,
            "output": os.path.join(folder, "sweep"),
            "generate": {"negative_prompt": "blurry", "steps": steps, "cfg": 7.0, "width": size, "height": size},
            "axes": {"lora": [{"folder": "epochs"}], "strength": list(STRENGTHS), "prompt": list(PROMPTS),
                     "seed": list(SEEDS)}}


def sequential(spec: dict, models: str) -> tuple[float, list[dict], dict]:
    """Every cell in one process, one after another: (seconds, per-cell results, images by key)."""
    from loradeck.core.runtime import Runtime
    from loradeck.nodes import host
    from loradeck.sweep import cells, from_dict
    from loradeck.sweep.driver import _payload, _warm
    from loradeck.sweep.worker import SweepWorker

    parsed = from_dict(spec)
    plan = cells.plan(parsed, Runtime(folders=host.headless_folders(models, parsed.output)))
    worker = SweepWorker({"models_dir": models, "input_dir": parsed.input_dir, "threads": 1, "warm": _warm(plan)})
    results = []
    with Contention.window("sequential"):
        started = time.perf_counter()
        for cell in plan.unique:
            results.append(worker.render(_payload(plan, cell)))
        seconds = time.perf_counter() - started
    assert all(r["status"] == "ok" for r in results), [r.get("error") for r in results if r["status"] != "ok"]
    return seconds, results, {r["key"]: r["png"] for r in results}


def swept(spec: dict) -> tuple[object, list[dict]]:
    from loradeck import sweep

    records = []
    with Contention.window("sweep"):
        result = sweep.run(spec, workers=2, threads=1, progress=False, on_result=records.append)
    return result, records


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def switching(seconds: dict) -> float:
    return seconds.get("loras", 0.0) + seconds.get("apply", 0.0)


def summary(label: str, values: list[float], cell: float) -> str:
    return (f"{label}: mean {1000 * statistics.mean(values):.1f} ms, median {1000 * statistics.median(values):.1f} "
            f"ms, max {1000 * max(values):.1f} ms = {100 * statistics.mean(values) / cell:.2f} % of one cell "
            f"({1000 * cell:.0f} ms)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (default 64)")
    parser.add_argument("--steps", type=int, default=8, help="denoising steps (default 8)")
    args = parser.parse_args(argv)
    start_up(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cells_count = EPOCHS * len(STRENGTHS) * len(PROMPTS) * len(SEEDS)
    log(f"loradeck sweep benchmark: {cells_count} cells ({EPOCHS} LoRA files x {len(STRENGTHS)} strengths x "
        f"{len(PROMPTS)} prompts x {len(SEEDS)} seeds), tiny SD {args.size}x{args.size}, {args.steps} steps, cfg 7, "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="loradeck-bench-sweep-") as folder:
        models = make_models(folder)
        spec = spec_for(folder, models, args.size, args.steps)
        seq_seconds, seq_results, seq_images = sequential(spec, models)
        log(f"sequential, one process, 1 torch thread: {cells_count} cells in {seq_seconds:.1f} s = "
            f"{cells_count / seq_seconds:.2f} cells/s")
        started = time.perf_counter()
        result, records = swept(spec)
        wall = time.perf_counter() - started
        assert result.ok == cells_count, (result.ok, result.failed)
        rendering = result.render_seconds
        log(f"sweep, 2 local Ray workers (1 CPU, 1 torch thread each): {cells_count} cells in {rendering:.1f} s "
            f"rendering = {cells_count / rendering:.2f} cells/s ({seq_seconds / rendering:.2f}x the sequential "
            f"run); end to end {wall:.1f} s = {cells_count / wall:.2f} cells/s (planning, Ray start, workers "
            f"building their pipeline: {wall - rendering:.1f} s)")
        same = sum(read(os.path.join(result.output, r["image"])) == seq_images[r["key"]] for r in records)
        log(f"sweep images equal to the sequential run's, byte for byte: {same}/{cells_count}")
        firsts = {}
        for record in records:
            firsts.setdefault(record["worker"], record["key"])
        steady = [r["seconds"] for r in records if r["key"] not in set(firsts.values())]
        cell = statistics.mean(s["total"] for s in steady)
        switch = [switching(s) for s in steady]
        share = statistics.mean(switch) / cell
        log(summary("switching overhead per cell on the workers (Load LoRA + Set Adapter Weights nodes + "
                    "apply), after each worker's first cell", switch, cell))
        log(summary("  everything but denoising per cell (adds the runner's validation, Generate's set-up, the "
                    "PNG)", [s["total"] - s["denoise"] for s in steady], cell))
        first = [r["seconds"] for r in records if r["key"] in set(firsts.values())]
        switched = ", ".join(f"{1000 * switching(s):.0f} ms" for s in first)
        totals = ", ".join(f"{1000 * s['total']:.0f} ms" for s in first)
        log(f"  each worker's first cell (first LoRA injection into its pipeline): switching {switched} of {totals}")
        all_cells = [switching(r["seconds"]) for r in records]
        log(f"  with those first cells: mean {1000 * statistics.mean(all_cells):.1f} ms = "
            f"{100 * statistics.mean(all_cells) / statistics.mean(r['seconds']['total'] for r in records):.2f} %")
        seq_switch = [switching(r["seconds"]) for r in seq_results[1:]]
        log(summary("  sequential side, for comparison", seq_switch,
                    statistics.mean(r["seconds"]["total"] for r in seq_results[1:])))
        busy = {k: Contention.share(k) for k in ("sequential", "sweep")}
        log("other processes' CPU use while timing (cores): " + ", ".join(
            f"{k} {v:.2f}" for k, v in busy.items() if v is not None))
        passed = share < TARGET and same == cells_count
        log(f"target: switching < {100 * TARGET:.0f} % of one cell's time: {100 * share:.2f} % "
            f"{'PASS' if share < TARGET else 'MISS'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
