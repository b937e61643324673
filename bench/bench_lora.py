"""LoRA Deck vs diffusers called directly: same model, same files, same run.

    python bench/bench_lora.py            # SD1.5-size UNet + CLIP text encoder, fp16, CPU (about 2 minutes idle)
    python bench/bench_lora.py --small    # a much smaller config, as a smoke run (well under a minute)
    python bench/bench_lora.py --json /tmp/loradeck-bench.json --profile

Two identical pipelines are built from configs with fixed seeds (random weights, nothing is
downloaded); one is driven with diffusers' own LoRA methods, the other through ``Deck``. Only
adapter operations are timed (no inference). See bench/README.md for what each row means.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict

import torch

from loradeck.core.api import Deck
from loradeck.core.runtime import Runtime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    ADAPTERS,
    BUSY,
    DETAIL,
    FULL,
    RANK,
    SMALL,
    STYLE,
    Config,
    Contention,
    Row,
    base_state,
    build_pipeline,
    code_version,
    in_turn,
    log,
    lora_layers,
    max_drift,
    outside_repo,
    peak_rss_gb,
    start_up,
    table,
    timed,
    write_lora,
)

COMPONENTS = ("unet", "text_encoder")

FUSE_CYCLES = 9  # fuse/unfuse timings swing +-40 % per call on a VM: enough samples for a stable median

# Targets: LoRA Deck time / diffusers time must be at most this (or, for the reload row, the speedup at least).
TARGET_LOAD = 0.5  # first load, cold store
TARGET_READD = 0.1  # adding the files again while their converted tensors are in the store
TARGET_STRENGTH = 0.1
TARGET_RELOAD_SPEEDUP = 20.0
TARGET_FUSE = 1.0
TARGET_UNFUSE = 0.1

# Strengths as (model = unet, clip = text_encoder) per adapter: at load, the two alternated changes, each fuse cycle.
LOAD_WEIGHTS = {STYLE: (0.8, 0.6), DETAIL: (0.5, 1.0)}
CHANGE_WEIGHTS = ({STYLE: (0.7, 0.4), DETAIL: (0.3, 0.9)}, {STYLE: (0.9, 0.5), DETAIL: (0.6, 0.8)})
CYCLE_WEIGHTS = tuple({STYLE: (0.5 + 0.1 * i, 1.0 - 0.1 * i), DETAIL: (1.0 - 0.15 * i, 0.4 + 0.1 * i)}
                      for i in range(FUSE_CYCLES))


# -- measuring ----------------------------------------------------------------------------------
class Profiler:
    """Optional cProfile around the LoRA Deck side of each measurement (--profile)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.profiles: dict[str, cProfile.Profile] = {}

    def wrap(self, label: str, fn: Callable[[], object]) -> Callable[[], object]:
        if not self.enabled:
            return fn
        prof = self.profiles.setdefault(label, cProfile.Profile())

        def run():
            prof.enable()
            try:
                return fn()
            finally:
                prof.disable()

        return run

    def report(self, top: int) -> str:
        out = io.StringIO()
        for label, prof in self.profiles.items():
            out.write(f"\n=== cProfile, LoRA Deck: {label} (cumulative, top {top}) ===\n")
            pstats.Stats(prof, stream=out).strip_dirs().sort_stats("cumulative").print_stats(top)
        return out.getvalue()


def median(xs: list[float]) -> float:
    return statistics.median(xs)


# -- the two sides ------------------------------------------------------------------------------
def set_diffusers(pipe, weights: dict[str, tuple[float, float]]) -> None:
    names = sorted(weights)
    pipe.set_adapters(names, adapter_weights=[{"unet": weights[n][0], "text_encoder": weights[n][1]} for n in names])


def load_diffusers(pipe, paths: dict[str, str]) -> None:
    for name in ADAPTERS:
        pipe.load_lora_weights(paths[name], adapter_name=name)
    set_diffusers(pipe, LOAD_WEIGHTS)


def load_deck(pipe, paths: dict[str, str]) -> Deck:
    deck = Deck(pipe, label="bench", runtime=Runtime())  # a cold store (fresh reads and hashes), as in a new process
    for name in ADAPTERS:
        model, clip = LOAD_WEIGHTS[name]
        deck.add(paths[name], name=name, model=model, clip=clip)
    return deck


def set_deck(deck: Deck, weights: dict[str, tuple[float, float]]) -> None:
    """diffusers' form: every adapter's strengths in one ``set_adapters`` call (one reconcile)."""
    names = sorted(weights)
    deck.set_adapters(names, [{"model": weights[n][0], "clip": weights[n][1]} for n in names])


def readd_deck(deck: Deck, paths: dict[str, str]) -> None:
    """The two files added again to a Deck that removed them (a live stack kept their conversions stored)."""
    for name in ADAPTERS:
        model, clip = LOAD_WEIGHTS[name]
        deck.add(paths[name], name=name, model=model, clip=clip)


# -- checks -------------------------------------------------------------------------------------
def peft_layer_count(pipe) -> dict[str, int]:
    return {c: len(lora_layers(getattr(pipe, c))) for c in COMPONENTS}


def scale_mismatch(pipe_d, pipe_l, deck: Deck) -> float:
    """Max |scale diffusers - scale LoRA Deck| over every layer and adapter (inf if activity differs)."""
    keys = {spec.name: key for key, spec in deck.stack.keyed()}
    worst = 0.0
    for c in COMPONENTS:
        layers_l = dict(lora_layers(getattr(pipe_l, c)))
        for name, layer_d in lora_layers(getattr(pipe_d, c)):
            layer_l = layers_l[name]
            for adapter in ADAPTERS:
                active_d = adapter in layer_d.active_adapters
                active_l = keys[adapter] in layer_l.active_adapters
                if active_d != active_l:
                    return float("inf")
                if active_d:
                    worst = max(worst, abs(layer_d.scaling[adapter] - layer_l.scaling[keys[adapter]]))
    return worst


def max_diff_between(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = base_state(a), base_state(b)
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa if sa[k].numel())


# -- the benchmark ------------------------------------------------------------------------------
def run(cfg: Config, tmp: str, profiler: Profiler, log: Callable[[str], None]) -> tuple[list[Row], dict]:
    info: dict = {"config": cfg.name}
    t0 = time.perf_counter()
    source = build_pipeline(cfg)
    info["unet_params_M"] = round(sum(p.numel() for p in source.unet.parameters()) / 1e6, 1)
    info["text_encoder_params_M"] = round(sum(p.numel() for p in source.text_encoder.parameters()) / 1e6, 1)
    reference = {c: {k: v.clone() for k, v in base_state(getattr(source, c)).items()} for c in COMPONENTS}
    pipe_d, pipe_l = source, copy.deepcopy(source)  # identical weights; one pipeline per library
    del source
    paths = {name: os.path.join(tmp, f"bench_{name}.safetensors") for name in ADAPTERS}
    for seed, name in enumerate(ADAPTERS, start=1):
        unet_n, text_n = write_lora(pipe_d, paths[name], seed=seed)
    info["lora_modules"] = {"unet": unet_n, "text_encoder": text_n}
    info["lora_file_MB"] = round(os.path.getsize(paths[STYLE]) / 1e6, 1)
    info["build_s"] = round(time.perf_counter() - t0, 1)
    log(f"built 2 pipelines (UNet {info['unet_params_M']}M, text encoder {info['text_encoder_params_M']}M params) "
        f"and 2 LoRA files ({unet_n}+{text_n} modules, rank {RANK}, {info['lora_file_MB']} MB each) "
        f"in {info['build_s']} s")
    rows: list[Row] = []

    # 1. first load: both files, then their strengths --------------------------------------------
    load_d, load_l, box = [], [], {}

    def side_d():
        load_d.append(timed(lambda: load_diffusers(pipe_d, paths)))

    def side_l():
        load_l.append(timed(profiler.wrap("first load", lambda: box.update(deck=load_deck(pipe_l, paths)))))

    for i in range(cfg.load_repeats):
        if i:
            pipe_d.unload_lora_weights()
            box.pop("deck").unload()
            assert peft_layer_count(pipe_d) == peft_layer_count(pipe_l) == {c: 0 for c in COMPONENTS}
        with Contention.window("load"):
            in_turn(i, side_d, side_l)
        log(f"  first load #{i + 1}: diffusers {load_d[-1]:.3f} s, LoRA Deck {load_l[-1]:.3f} s")
    deck: Deck = box["deck"]
    reads_after_load, loads_after_load = deck.owner.runtime.store.reads, deck.owner.loads
    info["peft_layers"] = {"diffusers": peft_layer_count(pipe_d), "loradeck": peft_layer_count(pipe_l)}
    assert info["peft_layers"]["diffusers"] == info["peft_layers"]["loradeck"] == info["lora_modules"], info
    assert (reads_after_load, loads_after_load) == (2, 2), (reads_after_load, loads_after_load)
    info["scale_mismatch_after_load"] = scale_mismatch(pipe_d, pipe_l, deck)
    ratio = median(load_l) / median(load_d)
    rows.append(Row("1. first load (2 files + strengths)", median(load_d), median(load_l), f"<= {TARGET_LOAD}x",
                    ratio <= TARGET_LOAD, ratio, busy=Contention.share("load"),
                    note="LoRA Deck from a cold store: reads each file fully and SHA-256 hashes it",
                    samples={"diffusers": load_d, "loradeck": load_l}))

    # 1b. the same files added again after Deck.remove, while another stack still describes them -----------
    readd_l = []
    for _ in range(cfg.load_repeats):
        branch = deck.stack  # another graph branch still describing both adapters: the store keeps them
        for name in ADAPTERS:
            deck.remove(name)
        assert peft_layer_count(pipe_l) == {c: 0 for c in COMPONENTS}, "remove left LoRA layers behind"
        with Contention.window("readd"):
            readd_l.append(timed(profiler.wrap("re-add", lambda: readd_deck(deck, paths))))
        del branch
    assert deck.owner.runtime.store.reads == reads_after_load, "re-adding read a file again"
    assert peft_layer_count(pipe_l) == info["lora_modules"]
    ratio = median(readd_l) / median(load_d)
    rows.append(Row("1b. re-add after remove (2 files + strengths)", median(load_d), median(readd_l),
                    f"<= {TARGET_READD}x", ratio <= TARGET_READD, ratio, busy=Contention.share("readd"),
                    note="diffusers: its first load (row 1); LoRA Deck: Deck.add of files a live stack kept stored",
                    samples={"loradeck": readd_l}))
    reads_after_load, loads_after_load = deck.owner.runtime.store.reads, deck.owner.loads

    # 2. strength changes ------------------------------------------------------------------------
    both_d, both_l, one_d, one_l = [], [], [], []
    state = LOAD_WEIGHTS
    with Contention.window("strength"):
        for i in range(cfg.cheap_repeats):  # both adapters change
            state = CHANGE_WEIGHTS[i % 2]
            both_d.append(timed(lambda w=state: set_diffusers(pipe_d, w)))
            both_l.append(timed(profiler.wrap("set_adapters", lambda w=state: set_deck(deck, w))))
        for i in range(cfg.cheap_repeats):  # only STYLE changes; diffusers still takes every adapter's weights
            state = {**state, STYLE: CHANGE_WEIGHTS[(i + cfg.cheap_repeats) % 2][STYLE]}
            model, clip = state[STYLE]
            one_d.append(timed(lambda w=state: set_diffusers(pipe_d, w)))
            one_l.append(timed(profiler.wrap(
                "set_weights", lambda m=model, c=clip: deck.set_weights(STYLE, model=m, clip=c))))
    reads_after_strength, loads_after_strength = deck.owner.runtime.store.reads, deck.owner.loads
    info["loradeck_counts"] = {"file_reads_after_load": reads_after_load,
                               "file_reads_after_strength": reads_after_strength,
                               "owner_loads_after_load": loads_after_load,
                               "owner_loads_after_strength": loads_after_strength,
                               "strength_calls": 2 * cfg.cheap_repeats}
    assert reads_after_strength == reads_after_load, "a strength change re-read a LoRA file"
    assert loads_after_strength == loads_after_load, "a strength change re-injected an adapter"
    info["scale_mismatch_after_changes"] = mismatch = scale_mismatch(pipe_d, pipe_l, deck)
    assert mismatch < 1e-9, f"the two libraries ended with different scales ({mismatch})"
    busy = Contention.share("strength")
    ratio = median(both_l) / median(both_d)
    rows.append(Row("2a. strength change, both adapters", median(both_d), median(both_l), f"<= {TARGET_STRENGTH}x",
                    ratio <= TARGET_STRENGTH, ratio, busy=busy,
                    note="diffusers: 1 set_adapters call; LoRA Deck: 1 Deck.set_adapters call (same arguments)",
                    samples={"diffusers": both_d, "loradeck": both_l}))
    ratio = median(one_l) / median(one_d)
    rows.append(Row("2b. strength change, one adapter", median(one_d), median(one_l), f"<= {TARGET_STRENGTH}x",
                    ratio <= TARGET_STRENGTH, ratio, busy=busy,
                    note="diffusers: 1 set_adapters call (both names); LoRA Deck: 1 set_weights call",
                    samples={"diffusers": one_d, "loradeck": one_l}))

    reload_d = []
    for i in range(cfg.reload_repeats):
        state = CHANGE_WEIGHTS[i % 2]

        def reload(w=state):
            pipe_d.unload_lora_weights()
            for name in ADAPTERS:
                pipe_d.load_lora_weights(paths[name], adapter_name=name)
            set_diffusers(pipe_d, w)

        with Contention.window("reload"):
            reload_d.append(timed(reload))
    speedup = median(reload_d) / median(one_l)
    rows.append(Row("2c. diffusers unload+reload vs LoRA Deck set_weights", median(reload_d), median(one_l),
                    f">= {TARGET_RELOAD_SPEEDUP:g}x faster", speedup >= TARGET_RELOAD_SPEEDUP, speedup,
                    busy=Contention.share("reload", "strength"),
                    note="ratio here = diffusers reload / LoRA Deck set_weights (row 2b)",
                    samples={"diffusers": reload_d}))
    log(f"  strength changes done; LoRA Deck file reads {reads_after_load} -> {reads_after_strength}, "
        f"owner.loads {loads_after_load} -> {loads_after_strength}")

    # 3-5. fuse / unfuse cycles with a strength change before each, then drift --------------------
    fuse_d, fuse_l, unfuse_d, unfuse_l = [], [], [], []
    for cycle, weights in enumerate(CYCLE_WEIGHTS):
        set_diffusers(pipe_d, weights)
        set_deck(deck, weights)
        with Contention.window("fuse"):
            in_turn(cycle, lambda: fuse_d.append(timed(lambda: pipe_d.fuse_lora(lora_scale=1.0))),
                    lambda: fuse_l.append(timed(profiler.wrap("fuse", lambda: deck.fuse(lora_scale=1.0)))))
        if cycle == 0:  # same strengths fused on both sides: the weights should agree up to fp16 rounding
            info["fused_max_abs_diff_between_libraries"] = {
                c: max_diff_between(getattr(pipe_d, c), getattr(pipe_l, c)) for c in COMPONENTS}
        with Contention.window("unfuse"):
            in_turn(cycle, lambda: unfuse_d.append(timed(lambda: pipe_d.unfuse_lora())),
                    lambda: unfuse_l.append(timed(profiler.wrap("unfuse", lambda: deck.unfuse()))))
        log(f"  cycle {cycle + 1}: fuse {fuse_d[-1]:.3f} / {fuse_l[-1]:.3f} s, "
            f"unfuse {unfuse_d[-1]:.3f} / {unfuse_l[-1]:.3f} s (diffusers / LoRA Deck)")
    ratio = median(fuse_l) / median(fuse_d)
    rows.append(Row("3. fuse", median(fuse_d), median(fuse_l), f"<= {TARGET_FUSE}x", ratio <= TARGET_FUSE, ratio,
                    busy=Contention.share("fuse"),
                    note="diffusers safe_fusing=False (its default); LoRA Deck safe_fusing=True (its default), "
                         "keeping the originals",
                    samples={"diffusers": fuse_d, "loradeck": fuse_l}))
    ratio = median(unfuse_l) / median(unfuse_d)
    rows.append(Row("4. unfuse", median(unfuse_d), median(unfuse_l), f"<= {TARGET_UNFUSE}x", ratio <= TARGET_UNFUSE,
                    ratio, busy=Contention.share("unfuse"),
                    note="diffusers subtracts the delta again; LoRA Deck gives the untouched original back",
                    samples={"diffusers": unfuse_d, "loradeck": unfuse_l}))
    drift = {who: {c: max_drift(getattr(pipe, c), reference[c]) for c in COMPONENTS}
             for who, pipe in (("diffusers", pipe_d), ("loradeck", pipe_l))}
    info["drift"] = {who: {c: {"max_abs": d[0], "tensors_changed": d[1]} for c, d in per.items()}
                     for who, per in drift.items()}
    worst = {who: max(d[0] for d in per.values()) for who, per in drift.items()}
    changed = {who: sum(d[1] for d in per.values()) for who, per in drift.items()}
    rows.append(Row(f"5. drift after {FUSE_CYCLES} fuse/unfuse cycles (max |dw|)", worst["diffusers"],
                    worst["loradeck"], "LoRA Deck == 0", worst["loradeck"] == 0.0, None, fmt=".3g",
                    note=f"base tensors changed: diffusers {changed['diffusers']}, LoRA Deck {changed['loradeck']}"))
    return rows, info


# -- output -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small config for a quick smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write results as JSON to PATH (outside the repo)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the LoRA Deck side of each measurement and print the top functions "
                             "(slows LoRA Deck's timings down, so ratios are not meaningful then)")
    parser.add_argument("--profile-top", type=int, default=25, help="functions to list per profile (default 25)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice, one per core)")
    parser.add_argument("--verbose", action="store_true", help="show diffusers/peft/transformers warnings")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend of the compile rows (default inductor; aot_eager is much faster "
                             "to compile and counts recompiles the same way)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    args = parser.parse_args(argv)
    if args.json and not outside_repo(args.json):
        parser.error(f"--json {args.json}: please write results outside the repository")
    start_up(args.threads, quiet=not args.verbose)

    import diffusers
    import peft
    import transformers

    cfg = SMALL if args.small else FULL
    started = time.perf_counter()
    profiler = Profiler(args.profile)
    versions = {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
                "peft": peft.__version__, "transformers": transformers.__version__}
    versions["loradeck"] = code_version()
    load_start = os.getloadavg()
    log(f"LoRA Deck benchmark: {cfg.name}; torch threads {torch.get_num_threads()}, "
        f"cpu count {os.cpu_count()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    log(f"load average at start: {load_start[0]:.2f} (timings are wall-clock: other busy processes inflate them)")
    with tempfile.TemporaryDirectory(prefix="loradeck-bench-") as tmp:
        rows, info = run(cfg, tmp, profiler, log)
        if not args.no_compile:
            sys.modules.setdefault("bench_lora", sys.modules[__name__])  # one module, one Contention record
            from bench_compile import run_compile

            compile_rows, info["compile"] = run_compile(tmp, args.compile_backend, log)
            rows += compile_rows
    total = time.perf_counter() - started
    rss = peak_rss_gb()
    log("")
    log(table(rows, "seconds are medians; ratio = LoRA Deck / diffusers (lower is better) except 2c; busy = CPU "
                    "other processes used during that phase, in % of one core ('!' = timings likely inflated)"))
    log("")
    counts = info["loradeck_counts"]
    log(f"LoRA Deck store reads: {counts['file_reads_after_load']} after load, "
        f"{counts['file_reads_after_strength']} after {counts['strength_calls']} strength changes; "
        f"owner.loads: {counts['owner_loads_after_load']} -> {counts['owner_loads_after_strength']}")
    log(f"per-layer scales, diffusers vs LoRA Deck after the strength changes: max |diff| "
        f"{info['scale_mismatch_after_changes']:.3g}")
    fused = info["fused_max_abs_diff_between_libraries"]
    log(f"fused weights, diffusers vs LoRA Deck (same strengths): max |diff| unet {fused['unet']:.3g}, "
        f"text_encoder {fused['text_encoder']:.3g} (fp16 rounding order)")
    for who, per in info["drift"].items():
        log(f"drift {who}: " + ", ".join(f"{c} max {d['max_abs']:.3g} in {d['tensors_changed']} tensors"
                                         for c, d in per.items()))
    share = Contention.share()
    info["other_processes_cpu_share"] = share
    info["loadavg"] = {"start": load_start, "end": os.getloadavg()}
    log(f"total runtime {total:.1f} s, peak RSS {rss:.2f} GiB")
    if share is not None:
        log(f"other processes used {100 * share:.0f}% of one core during the measured phases"
            + (" -- the machine was busy, so timings are inflated; rerun when it is idle" if share > BUSY else ""))
    if args.profile:
        log(profiler.report(args.profile_top))
    failed = [r.label for r in rows if r.passed is False]
    log("all targets met" if not failed else f"FAILED: {', '.join(failed)}")
    if args.json:
        result = {"info": info, "versions": versions, "total_s": total, "peak_rss_gb": rss,
                  "rows": [asdict(r) for r in rows]}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
        log(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
