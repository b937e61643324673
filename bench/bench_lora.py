"""LoRA Deck vs diffusers called directly: same model, same files, same run.

    python bench/bench_lora.py            # SD1.5-size UNet + CLIP text encoder, fp16, CPU (a few minutes)
    python bench/bench_lora.py --small    # a much smaller config, as a smoke run (well under a minute)
    python bench/bench_lora.py --json /tmp/loradeck-bench.json

Two identical pipelines are built from configs with fixed seeds (random weights, nothing is
downloaded); one is driven with diffusers' own LoRA methods, the other through ``Deck``. Only
adapter operations are timed (no inference). See bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import gc
import io
import json
import logging
import os
import platform
import pstats
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from safetensors.torch import save_file

import loradeck
from loradeck.core.api import Deck
from loradeck.core.files import FILE_CACHE
from loradeck.core.tiny import tiny_clip_tokenizer, tiny_vae

REPO = os.path.dirname(os.path.abspath(loradeck.__file__))

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
RANK = 32
FUSE_CYCLES = 5

# Targets: LoRA Deck time / diffusers time must be at most this (or, for "speedup", at least).
TARGET_LOAD = 1.1
TARGET_STRENGTH = 1.2
TARGET_RELOAD_SPEEDUP = 20.0

# Strengths (model/unet, clip/text_encoder) per adapter: the load, then values alternated between changes.
LOAD_WEIGHTS = {"a": (0.8, 0.6), "b": (0.5, 1.0)}
CHANGE_WEIGHTS = ({"a": (0.7, 0.4), "b": (0.3, 0.9)}, {"a": (0.9, 0.5), "b": (0.6, 0.8)})
CYCLE_WEIGHTS = tuple({"a": (0.5 + 0.1 * i, 1.0 - 0.1 * i), "b": (1.0 - 0.15 * i, 0.4 + 0.1 * i)}
                      for i in range(FUSE_CYCLES))


@dataclass(frozen=True)
class Config:
    name: str
    unet: dict
    text: dict
    repeats: int  # timed repeats of the expensive operations (load, reload)
    cheap_repeats: int  # timed repeats of the cheap ones (strength changes)


FULL = Config(
    name="SD1.5-size (UNet 320/640/1280/1280, CLIP-L 12x768), fp16",
    unet=dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
              cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32),
    text=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
              projection_dim=768),
    repeats=3,
    cheap_repeats=7,
)
SMALL = Config(
    name="small (UNet 32/64/128/128, CLIP 2x64), fp16",
    unet=dict(sample_size=32, block_out_channels=(32, 64, 128, 128), layers_per_block=2,
              cross_attention_dim=64, attention_head_dim=8, norm_num_groups=32),
    text=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256, projection_dim=64),
    repeats=3,
    cheap_repeats=7,
)


# -- building -----------------------------------------------------------------------------------
def build_pipeline(cfg: Config, seed: int = 0):
    """A StableDiffusionPipeline with random weights from configs: UNet + CLIP text encoder at cfg size, tiny VAE."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_clip_tokenizer()
    vocab = 49408
    assert vocab >= len(tokenizer)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        use_linear_projection=False, **cfg.unet,
    ).to(torch.float16).eval()
    torch.manual_seed(seed + 1)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
        **cfg.text,
    )).to(torch.float16).eval()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(vae=tiny_vae(seed).to(torch.float16), text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def lora_targets(model: torch.nn.Module, suffixes) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and n.endswith(suffixes)]


def lora_pair(module: torch.nn.Module, rank: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(lora_A, lora_B) in peft layout: Linear [r, in] / [out, r]; 1x1 Conv2d [r, in, 1, 1] / [out, r, 1, 1]."""
    if isinstance(module, torch.nn.Conv2d):
        assert tuple(module.kernel_size) == (1, 1), module
        fan_in, fan_out, tail = module.in_channels, module.out_channels, (1, 1)
    else:
        fan_in, fan_out, tail = module.in_features, module.out_features, ()
    down = torch.randn(rank, fan_in, *tail, generator=gen) / fan_in**0.5
    up = torch.randn(fan_out, rank, *tail, generator=gen) * 0.01
    return down.half().contiguous(), up.half().contiguous()


def write_lora(pipe, path: str, seed: int) -> tuple[int, int]:
    """A diffusers-format rank-32 LoRA for ``pipe``; returns (unet modules, text encoder modules)."""
    gen = torch.Generator().manual_seed(seed)
    sd, counts = {}, []
    parts = (("unet", pipe.unet, UNET_TARGETS), ("text_encoder", pipe.text_encoder, TEXT_TARGETS))
    for prefix, model, suffixes in parts:
        targets = lora_targets(model, suffixes)
        for name, module in targets:
            down, up = lora_pair(module, RANK, gen)
            sd[f"{prefix}.{name}.lora_A.weight"], sd[f"{prefix}.{name}.lora_B.weight"] = down, up
        counts.append(len(targets))
    save_file(sd, path, metadata={"format": "pt"})
    return counts[0], counts[1]


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


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Row:
    label: str
    diffusers: float | None  # seconds (or, for drift rows, max abs difference)
    loradeck: float | None
    target: str = ""
    passed: bool | None = None
    ratio: float | None = None  # loradeck / diffusers unless stated
    note: str = ""
    samples: dict = field(default_factory=dict)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def diffusers_weights(weights: dict[str, tuple[float, float]]) -> tuple[list[str], list[dict]]:
    names = sorted(weights)
    return names, [{"unet": weights[n][0], "text_encoder": weights[n][1]} for n in names]


def set_diffusers(pipe, weights) -> None:
    names, per_adapter = diffusers_weights(weights)
    pipe.set_adapters(names, adapter_weights=per_adapter)


def load_diffusers(pipe, paths: dict[str, str]) -> None:
    for name in sorted(paths):
        pipe.load_lora_weights(paths[name], adapter_name=name)
    set_diffusers(pipe, LOAD_WEIGHTS)


def load_deck(pipe, paths: dict[str, str]) -> Deck:
    deck = Deck(pipe, label="bench")
    for name in sorted(paths):
        model, clip = LOAD_WEIGHTS[name]
        deck.add(paths[name], name=name, model=model, clip=clip)
    return deck


def reset_file_cache() -> None:
    """A cold LoRA Deck file cache (fresh reads, fresh hashes, reads counter at 0), as in a new process."""
    FILE_CACHE.__init__(FILE_CACHE.budget_bytes)


def peft_layer_count(pipe) -> dict[str, int]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {c: sum(isinstance(m, BaseTunerLayer) for m in getattr(pipe, c).modules()) for c in ("unet", "text_encoder")}


def base_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's own tensors under their original names (peft's ``base_layer`` unwrapped, LoRA tensors skipped)."""
    out = {}
    for key, value in model.state_dict().items():
        if ".lora_" in key:
            continue
        out[key.replace(".base_layer.", ".")] = value
    return out


def max_drift(model: torch.nn.Module, reference: dict[str, torch.Tensor]) -> tuple[float, int]:
    """Max |w - w_original| over every base tensor, and how many tensors differ at all."""
    now = base_state(model)
    if set(now) != set(reference):
        missing, extra = sorted(set(reference) - set(now)), sorted(set(now) - set(reference))
        raise AssertionError(f"state dict keys changed: missing {missing[:3]}, extra {extra[:3]}")
    worst, changed = 0.0, 0
    for key, ref in reference.items():
        diff = (now[key].float() - ref.float()).abs().max().item() if ref.numel() else 0.0
        if diff:
            changed += 1
        worst = max(worst, diff)
    return worst, changed


def max_diff_between(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = base_state(a), base_state(b)
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa if sa[k].numel())


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


# -- the benchmark ------------------------------------------------------------------------------
def run(cfg: Config, tmp: str, profiler: Profiler, log: Callable[[str], None]) -> tuple[list[Row], dict]:
    info: dict = {"config": cfg.name}
    t0 = time.perf_counter()
    source = build_pipeline(cfg)
    info["unet_params_M"] = round(sum(p.numel() for p in source.unet.parameters()) / 1e6, 1)
    info["text_encoder_params_M"] = round(sum(p.numel() for p in source.text_encoder.parameters()) / 1e6, 1)
    reference = {c: {k: v.clone() for k, v in base_state(getattr(source, c)).items()} for c in ("unet", "text_encoder")}
    pipe_d, pipe_l = source, copy.deepcopy(source)  # identical weights; one per library
    del source
    paths = {"a": os.path.join(tmp, "bench_lora_a.safetensors"), "b": os.path.join(tmp, "bench_lora_b.safetensors")}
    for seed, name in enumerate(sorted(paths), start=1):
        unet_n, text_n = write_lora(pipe_d, paths[name], seed=seed)
    info["lora_modules"] = {"unet": unet_n, "text_encoder": text_n}
    info["lora_file_MB"] = round(os.path.getsize(paths["a"]) / 1e6, 1)
    info["build_s"] = round(time.perf_counter() - t0, 1)
    log(f"built 2 pipelines (UNet {info['unet_params_M']}M, text encoder {info['text_encoder_params_M']}M params) "
        f"and 2 LoRA files ({unet_n}+{text_n} modules, rank {RANK}, {info['lora_file_MB']} MB each) "
        f"in {info['build_s']} s")
    rows: list[Row] = []

    # 1. first load ------------------------------------------------------------------------------
    load_d, load_l, deck = [], [], None
    for i in range(cfg.repeats):
        if i:
            pipe_d.unload_lora_weights()
            deck.unload()
            assert peft_layer_count(pipe_l) == {"unet": 0, "text_encoder": 0}, "Deck.unload left peft layers"
        reset_file_cache()
        load_d.append(timed(lambda: load_diffusers(pipe_d, paths)))
        box = {}
        load_once = lambda box=box: box.setdefault("deck", load_deck(pipe_l, paths))  # noqa: E731
        load_l.append(timed(profiler.wrap("first load", load_once)))
        deck = box["deck"]
        log(f"  first load #{i + 1}: diffusers {load_d[-1]:.3f} s, LoRA Deck {load_l[-1]:.3f} s")
    reads_after_load, loads_after_load = FILE_CACHE.reads, deck.owner.loads
    layers_d, layers_l = peft_layer_count(pipe_d), peft_layer_count(pipe_l)
    info["peft_layers"] = {"diffusers": layers_d, "loradeck": layers_l}
    assert layers_d == layers_l == {"unet": unet_n, "text_encoder": text_n}, info["peft_layers"]
    assert reads_after_load == 2 and loads_after_load == 2, (reads_after_load, loads_after_load)
    ratio = median(load_l) / median(load_d)
    rows.append(Row("1. first load (2 files + strengths)", median(load_d), median(load_l), f"<= {TARGET_LOAD}x",
                    ratio <= TARGET_LOAD, ratio, note="LoRA Deck also reads fully + SHA-256 hashes each file",
                    samples={"diffusers": load_d, "loradeck": load_l}))

    # 2. strength change -------------------------------------------------------------------------
    both_d, both_l, one_d, one_l = [], [], [], []
    for i in range(cfg.cheap_repeats):
        w = CHANGE_WEIGHTS[i % 2]
        both_d.append(timed(lambda w=w: set_diffusers(pipe_d, w)))

        def deck_both(w=w):
            for name in sorted(w):
                deck.set_weights(name, model=w[name][0], clip=w[name][1])

        both_l.append(timed(profiler.wrap("set_weights", deck_both)))
    for i in range(cfg.cheap_repeats):
        w = {**CHANGE_WEIGHTS[1 - i % 2], "a": CHANGE_WEIGHTS[i % 2]["a"]}  # only "a" differs from the state before
        one_d.append(timed(lambda w=w: set_diffusers(pipe_d, w)))
        one_l.append(timed(profiler.wrap("set_weights", lambda w=w: deck.set_weights("a", model=w["a"][0],
                                                                                     clip=w["a"][1]))))
    reads_after_strength, loads_after_strength = FILE_CACHE.reads, deck.owner.loads
    info["loradeck_counts"] = {"file_reads_after_load": reads_after_load, "file_reads_after_strength":
                               reads_after_strength, "owner_loads_after_load": loads_after_load,
                               "owner_loads_after_strength": loads_after_strength}
    assert reads_after_strength == reads_after_load, "strength changes re-read a LoRA file"
    assert loads_after_strength == loads_after_load, "strength changes re-injected an adapter"
    ratio = median(both_l) / median(both_d)
    rows.append(Row("2a. strength change, both adapters", median(both_d), median(both_l), f"<= {TARGET_STRENGTH}x",
                    ratio <= TARGET_STRENGTH, ratio,
                    note="diffusers: 1 set_adapters call; LoRA Deck: 2 set_weights calls",
                    samples={"diffusers": both_d, "loradeck": both_l}))
    ratio = median(one_l) / median(one_d)
    rows.append(Row("2b. strength change, one adapter", median(one_d), median(one_l), f"<= {TARGET_STRENGTH}x",
                    ratio <= TARGET_STRENGTH, ratio,
                    note="diffusers: 1 set_adapters call (both names); LoRA Deck: 1 set_weights call",
                    samples={"diffusers": one_d, "loradeck": one_l}))

    reload_d = []
    for i in range(cfg.repeats):
        w = CHANGE_WEIGHTS[i % 2]

        def reload(w=w):
            pipe_d.unload_lora_weights()
            for name in sorted(paths):
                pipe_d.load_lora_weights(paths[name], adapter_name=name)
            set_diffusers(pipe_d, w)

        reload_d.append(timed(reload))
    speedup = median(reload_d) / median(one_l)
    rows.append(Row("2c. diffusers unload+reload vs LoRA Deck set_weights", median(reload_d), median(one_l),
                    f">= {TARGET_RELOAD_SPEEDUP:g}x faster", speedup >= TARGET_RELOAD_SPEEDUP, speedup,
                    note="ratio = diffusers reload / LoRA Deck set_weights (one adapter)",
                    samples={"diffusers": reload_d}))
    log(f"  strength changes done; LoRA Deck file reads {reads_after_load} -> {reads_after_strength}, "
        f"owner.loads {loads_after_load} -> {loads_after_strength}")

    # 3-5. fuse / unfuse cycles, then drift -----------------------------------------------------
    fuse_d, fuse_l, unfuse_d, unfuse_l = [], [], [], []
    for cycle, w in enumerate(CYCLE_WEIGHTS):
        set_diffusers(pipe_d, w)
        for name in sorted(w):
            deck.set_weights(name, model=w[name][0], clip=w[name][1])
        fuse_d.append(timed(lambda: pipe_d.fuse_lora(lora_scale=1.0)))
        fuse_l.append(timed(profiler.wrap("fuse", lambda: deck.fuse(lora_scale=1.0))))
        if cycle == 0:
            info["fused_max_abs_diff_between_libraries"] = {
                c: max_diff_between(getattr(pipe_d, c), getattr(pipe_l, c)) for c in ("unet", "text_encoder")}
        unfuse_d.append(timed(lambda: pipe_d.unfuse_lora()))
        unfuse_l.append(timed(profiler.wrap("unfuse", lambda: deck.unfuse())))
        log(f"  cycle {cycle + 1}: fuse {fuse_d[-1]:.3f} / {fuse_l[-1]:.3f} s, "
            f"unfuse {unfuse_d[-1]:.3f} / {unfuse_l[-1]:.3f} s (diffusers / LoRA Deck)")
    ratio = median(fuse_l) / median(fuse_d)
    rows.append(Row("3. fuse", median(fuse_d), median(fuse_l), "report", None, ratio,
                    note="diffusers safe_fusing=False (default); LoRA Deck safe_fusing=True (default)",
                    samples={"diffusers": fuse_d, "loradeck": fuse_l}))
    ratio = median(unfuse_l) / median(unfuse_d)
    rows.append(Row("4. unfuse", median(unfuse_d), median(unfuse_l), "report", None, ratio,
                    note="diffusers subtracts the delta again; LoRA Deck copies the saved original back",
                    samples={"diffusers": unfuse_d, "loradeck": unfuse_l}))
    drift = {}
    for who, pipe in (("diffusers", pipe_d), ("loradeck", pipe_l)):
        drift[who] = {c: max_drift(getattr(pipe, c), reference[c]) for c in ("unet", "text_encoder")}
    info["drift"] = {who: {c: {"max_abs": d[0], "tensors_changed": d[1]} for c, d in per.items()}
                     for who, per in drift.items()}
    worst = {who: max(d[0] for d in per.values()) for who, per in drift.items()}
    changed = {who: sum(d[1] for d in per.values()) for who, per in drift.items()}
    rows.append(Row(f"5. drift after {FUSE_CYCLES} fuse/unfuse cycles (max |dw|)", worst["diffusers"],
                    worst["loradeck"], "LoRA Deck == 0", worst["loradeck"] == 0.0, None,
                    note=f"tensors changed: diffusers {changed['diffusers']}, LoRA Deck {changed['loradeck']}"))
    return rows, info


def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def table(rows: list[Row]) -> str:
    head = f"{'measurement':<56} {'diffusers':>11} {'LoRA Deck':>11} {'ratio':>8}  {'target':<20} result"
    lines = [head, "-" * len(head)]
    for r in rows:
        drift = r.label.startswith("5.")
        d = f"{r.diffusers:.3g}" if drift else fmt_s(r.diffusers)
        val = f"{r.loradeck:.3g}" if drift else fmt_s(r.loradeck)
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        result = "info" if r.passed is None else ("PASS" if r.passed else "FAIL")
        lines.append(f"{r.label:<56} {d:>11} {val:>11} {ratio:>8}  {r.target:<20} {result}")
        if r.note:
            lines.append(f"    {r.note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small config for a quick smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write results as JSON to PATH (outside the repo)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the LoRA Deck side of each measurement and print the top functions "
                             "(adds overhead to LoRA Deck's timings)")
    parser.add_argument("--profile-top", type=int, default=25, help="functions to list per profile (default 25)")
    parser.add_argument("--verbose", action="store_true", help="show diffusers/peft/transformers warnings")
    args = parser.parse_args(argv)
    if args.json and os.path.abspath(args.json).startswith(REPO + os.sep):
        parser.error(f"--json {args.json}: please write results outside the repository ({REPO})")
    if not args.verbose:
        warnings.filterwarnings("ignore")
        for name in ("diffusers", "peft", "transformers"):
            logging.getLogger(name).setLevel(logging.ERROR)
        from diffusers.utils import logging as dlogging
        from transformers.utils import logging as tlogging

        dlogging.set_verbosity_error()
        dlogging.disable_progress_bar()
        tlogging.set_verbosity_error()
        tlogging.disable_progress_bar()

    cfg = SMALL if args.small else FULL
    started = time.perf_counter()
    profiler = Profiler(args.profile)

    def log(msg: str) -> None:
        print(msg, flush=True)  # noqa: T201

    import diffusers
    import peft
    import transformers

    versions = {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
                "peft": peft.__version__, "transformers": transformers.__version__}
    load_start = os.getloadavg()
    log(f"LoRA Deck benchmark: {cfg.name}; torch threads {torch.get_num_threads()}, "
        f"cpu count {os.cpu_count()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    log(f"load average at start: {load_start[0]:.2f} (timings are wall-clock: other busy processes inflate them)")
    with tempfile.TemporaryDirectory(prefix="loradeck-bench-") as tmp:
        rows, info = run(cfg, tmp, profiler, log)
    total = time.perf_counter() - started
    rss = peak_rss_gb()
    log("")
    log(table(rows))
    log("")
    counts = info["loradeck_counts"]
    log(f"LoRA Deck FILE_CACHE.reads: {counts['file_reads_after_load']} after load, "
        f"{counts['file_reads_after_strength']} after {2 * cfg.cheap_repeats} strength changes; "
        f"owner.loads: {counts['owner_loads_after_load']} -> {counts['owner_loads_after_strength']}")
    fused = info["fused_max_abs_diff_between_libraries"]
    log(f"fused weights, diffusers vs LoRA Deck (same strengths): max |diff| unet {fused['unet']:.3g}, "
        f"text_encoder {fused['text_encoder']:.3g} (fp16 rounding order)")
    for who, per in info["drift"].items():
        log(f"drift {who}: " + ", ".join(f"{c} max {d['max_abs']:.3g} in {d['tensors_changed']} tensors"
                                         for c, d in per.items()))
    load_end = os.getloadavg()
    info["loadavg"] = {"start": load_start, "end": load_end}
    log(f"total runtime {total:.1f} s, peak RSS {rss:.2f} GB, load average at end {load_end[0]:.2f} "
        f"(1 min) / {load_end[1]:.2f} (5 min) on {os.cpu_count()} cores")
    if args.profile:
        log(profiler.report(args.profile_top))
    failed = [r.label for r in rows if r.passed is False]
    log("all targets met" if not failed else f"FAILED: {', '.join(failed)}")
    if args.json:
        result = {"config": info, "versions": versions, "total_s": total, "peak_rss_gb": rss,
                  "rows": [r.__dict__ for r in rows]}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
        log(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
