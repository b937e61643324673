"""Memory soak: 1,000 distinct LoRA files added and unloaded on the tiny SD model; RSS must stay flat.

    OMP_NUM_THREADS=1 python bench/soak_memory.py              # 1,000 files (a few minutes on a busy CPU)
    python bench/soak_memory.py --files 200 --store-mb 8 --json /tmp/soak.json

Each file is new content (its own seed), about 1.5 MB (rank 32 on every attention and MLP linear layer of the tiny
UNet and text encoder, larger than the ~1 MB files of the hostile-input run in issue 9), written just before it is added
and deleted after. After a warm-up the resident set size is sampled every ``--every`` files; the figure is the
growth from the end of the warm-up to the end. Exit status 1 when it exceeds ``--limit-mb`` (default 20).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time

import torch
from safetensors.torch import save_file

from loradeck.core import Deck, Runtime, Settings
from loradeck.core.families import tiny_pipeline

MB = 1024 * 1024
TARGETS = {"unet": ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"),
           "text_encoder": ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")}
RANK = 32


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def layers(pipe) -> list[tuple[str, str, int, int]]:
    """(component, module name, out, in) of every linear layer a soak file patches."""
    found = []
    for component, suffixes in TARGETS.items():
        for name, module in getattr(pipe, component).named_modules():
            if isinstance(module, torch.nn.Linear) and name.endswith(suffixes):
                found.append((component, name, module.out_features, module.in_features))
    return found


def write_file(path: str, targets, seed: int) -> int:
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for component, name, out, inp in targets:
        key = f"{component}.{name}"
        sd[f"{key}.lora_A.weight"] = torch.randn(RANK, inp, generator=gen) * 0.05
        sd[f"{key}.lora_B.weight"] = torch.randn(out, RANK, generator=gen) * 0.05
    save_file(sd, path)
    return os.path.getsize(path)


def soak(files: int, store_mb: int, every: int, warmup: int) -> dict:
    pipe = tiny_pipeline("sd1")
    pipe.set_progress_bar_config(disable=True)
    runtime = Runtime(Settings(store_bytes=store_mb * MB))
    deck = Deck(pipe, runtime=runtime)
    targets = layers(pipe)
    samples, started, size = [], time.perf_counter(), 0
    with tempfile.TemporaryDirectory() as folder:
        for i in range(files + warmup):
            path = os.path.join(folder, f"soak_{i}.safetensors")
            size = write_file(path, targets, seed=i)
            deck.add(path, name="soak")
            deck.unload()
            os.remove(path)
            if i + 1 >= warmup and (i + 1 - warmup) % every == 0:
                gc.collect()
                samples.append((i + 1 - warmup, rss() / MB))
    growth = samples[-1][1] - samples[0][1]
    return {"files": files, "file_mb": round(size / MB, 2), "store_mb": store_mb, "warmup": warmup,
            "rss_start_mb": round(samples[0][1], 1), "rss_end_mb": round(samples[-1][1], 1),
            "rss_growth_mb": round(growth, 1), "store_entries_at_end": len(runtime.store),
            "seconds": round(time.perf_counter() - started, 1), "samples": [f"{n}: {m:.1f} MB" for n, m in samples]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--store-mb", type=int, default=16, help="the adapter store's budget (LORADECK_STORE_MB)")
    parser.add_argument("--every", type=int, default=100, help="sample RSS every N files")
    parser.add_argument("--warmup", type=int, default=20, help="files added and unloaded before the first sample")
    parser.add_argument("--limit-mb", type=float, default=20.0)
    parser.add_argument("--json", help="write the result here too")
    args = parser.parse_args(argv)
    result = soak(args.files, args.store_mb, args.every, args.warmup)
    text = json.dumps(result, indent=2)
    print(text)  # noqa: T201
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    ok = result["rss_growth_mb"] <= args.limit_mb
    print(f"RSS growth over {args.files} files: {result['rss_growth_mb']} MB "  # noqa: T201
          f"({'within' if ok else 'OVER'} the {args.limit_mb:g} MB limit)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
