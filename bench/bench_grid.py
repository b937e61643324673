"""LoRA Grid: an N=4 grid in one batched pass vs the same 4 configurations run one after another.

    python bench/bench_grid.py            # SD1.5-size UNet + CLIP-L (random weights), fp32, CPU
    python bench/bench_grid.py --small    # the small layout, as a smoke run

The pipeline is bench_lora.py's (same configs, same random LoRA files, nothing downloaded), cast to fp32
for CPU inference. Both sides use one Deck with the two adapters loaded; the grid's X axis is one
adapter's strength at 4 values; the separate side calls ``generate`` with each of those 4 stacks. Each
side is warmed up once, then timed ``--repeats`` times (median). The cells are also compared with the
separate images (max |diff| in 0..1). See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ADAPTERS, DETAIL, FULL, SMALL, STYLE, build_pipeline, log, start_up, write_lora  # noqa: E402

from loradeck.core import run_grid  # noqa: E402
from loradeck.core.api import Deck  # noqa: E402
from loradeck.core.generation.generate import generate  # noqa: E402
from loradeck.core.stacks.specs import GenerateParams  # noqa: E402

STRENGTHS = (0.0, 0.5, 1.0, 1.5)
TARGET_GPU = 0.6  # the target on a GPU (reported, not enforced: this runs on the CPU)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small layout for a quick smoke run")
    parser.add_argument("--size", type=int, default=128, help="image size in pixels (default 128: latent 16x16)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps (default 4)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per side after a warm-up (default 2)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    start_up(args.threads)
    cfg = SMALL if args.small else FULL
    log(f"LoRA Grid benchmark: {cfg.name} cast to fp32, {args.size}x{args.size}, {args.steps} steps, cfg 7 "
        f"(CFG doubles the batch), torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    pipe = build_pipeline(cfg).to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    with tempfile.TemporaryDirectory(prefix="loradeck-bench-grid-") as tmp:
        paths = {name: os.path.join(tmp, f"{name}.safetensors") for name in ADAPTERS}
        for seed, name in enumerate(ADAPTERS, start=1):
            write_lora(pipe, paths[name], seed=seed)
        deck = Deck(pipe).add(paths[STYLE], STYLE).add(paths[DETAIL], DETAIL, model=0.6, clip=0.6)
    log(f"built the pipeline and loaded 2 LoRAs in {time.perf_counter() - t0:.1f} s")
    params = GenerateParams("a lighthouse on a cliff", "blurry", seed=42, steps=args.steps, cfg=7.0,
                            width=args.size, height=args.size)
    axis = f"strength {STYLE}: " + " | ".join(f"{s:g}" for s in STRENGTHS)
    stacks = [deck.set_weights(STYLE, model=s, clip=s).stack for s in STRENGTHS]
    base = deck.set_weights(STYLE, model=1.0, clip=1.0).stack

    def grid():
        return run_grid(deck.owner, base, params, axis)

    def separate():
        return torch.cat([generate(deck.owner, s, params) for s in stacks])

    def timed(fn):
        gc.collect()
        start = time.perf_counter()
        out = fn()
        return time.perf_counter() - start, out

    result, images = grid(), separate()  # warm-up (and the outputs compared below)
    if not result.batched:
        log(f"the grid did not batch: {result.text.splitlines()[0]}")
        return 1
    grid_s, separate_s = [], []
    for _ in range(args.repeats):  # interleaved, so a busy spell hits both sides
        grid_s.append(timed(grid)[0])
        separate_s.append(timed(separate)[0])
    g, s = statistics.median(grid_s), statistics.median(separate_s)
    diff = (result.cells - images).abs().max().item()
    log(f"grid of 4 in one pass: {g:.2f} s (samples {', '.join(f'{x:.2f}' for x in grid_s)})")
    log(f"4 separate runs:       {s:.2f} s (samples {', '.join(f'{x:.2f}' for x in separate_s)})")
    log(f"ratio grid / separate: {g / s:.2f} (the GPU target is <= {TARGET_GPU})")
    log(f"cells vs separate runs: max |diff| {diff:.2e} ({diff * 255:.2f}/255)")
    log(f"load average at end {os.getloadavg()[0]:.2f} (wall-clock timings: other busy processes inflate them)")
    return 0 if diff <= 2 / 255 else 1


if __name__ == "__main__":
    sys.exit(main())
