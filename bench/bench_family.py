"""LoRA Deck vs diffusers on a FLUX.2 [klein] 4B-size transformer: one library per process.

    python bench/bench_family.py                      # klein-4B size, bf16 (7.8 GB file; ~16 GB peak RSS per process)
    python bench/bench_family.py --small              # tiny widths, as a smoke run (well under a minute)
    python bench/bench_family.py --workdir /tmp/kb    # keep (and reuse) the model and LoRA files there

A ``Flux2Transformer2DModel`` with klein-4B's config (random seeded bf16 weights, nothing is downloaded) is
written once to a temporary safetensors file outside the repository, with a rank-32 LoRA in ai-toolkit's layout
(``diffusion_model.<BFL names>.lora_A/lora_B.weight``, fp16 as ai-toolkit saves). Each library then runs in its
own fresh process (``--repeats`` each, alternating which goes first): it loads the transformer into the tiny
built-in ``Flux2KleinPipeline`` and times first load, strength changes, fuse and unfuse, then checks drift.
See bench/README.md for what each row means. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

from loradeck.core.api import Deck
from loradeck.core.runtime import Runtime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    BUSY,
    RANK,
    STYLE,
    Contention,
    Row,
    base_state,
    code_version,
    log,
    lora_layers,
    max_drift,
    outside_repo,
    peak_rss_gb,
    start_up,
    table,
    timed,
)

LIBRARIES = ("diffusers", "loradeck")
TITLES = {"diffusers": "diffusers", "loradeck": "LoRA Deck"}

# FLUX.2 [klein] 4B's transformer: huggingface/diffusers scripts/convert_flux2_to_diffusers.py (@58eb52c,
# get_flux2_transformer_config, model_type "klein-4b"); the same numbers as ostris/ai-toolkit's Klein4BParams
# (extensions_built_in/diffusion_models/flux2/src/model.py @27a03a9: hidden 3072, 24 heads, depth 5 + 20 single,
# context_in_dim 7680, in_channels 128, axes 4 x 32, theta 2000, mlp_ratio 3, no guidance embedding).
KLEIN_4B = dict(patch_size=1, in_channels=128, num_layers=5, num_single_layers=20, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=7680, timestep_guidance_channels=256, mlp_ratio=3.0,
                axes_dims_rope=(32, 32, 32, 32), rope_theta=2000, eps=1e-6, guidance_embeds=False)
# --small: the same layout at tiny widths (hidden 128 = 4 heads x 32, 2 double + 4 single blocks)
SMALL_KLEIN = {**KLEIN_4B, "num_layers": 2, "num_single_layers": 4, "attention_head_dim": 32, "num_attention_heads": 4,
               "joint_attention_dim": 256, "axes_dims_rope": (8, 8, 8, 8)}


@dataclass(frozen=True)
class Plan:
    name: str
    transformer: dict
    repeats: int  # processes per library
    strength_repeats: int  # timed strength changes per kind and process
    cycles: int  # fuse/unfuse cycles per process


FULL = Plan("FLUX.2 [klein] 4B-size transformer, bf16", KLEIN_4B, repeats=3, strength_repeats=9, cycles=3)
SMALL = Plan("small FLUX.2 transformer (hidden 128, 2 + 4 blocks), bf16", SMALL_KLEIN, repeats=2, strength_repeats=5,
             cycles=2)

TARGET_LOAD = 0.5
TARGET_STRENGTH = 0.1
TARGET_FUSE = 1.0
TARGET_UNFUSE = 0.1

LOAD_WEIGHT = 0.8
CHANGE_WEIGHTS = (0.6, 0.9)  # alternated by the strength changes
CYCLE_WEIGHTS = (1.0, 0.7, 0.5, 1.2, 0.9, 0.6, 1.1, 0.8, 0.4)  # one per fuse cycle
SAMPLED = ("transformer_blocks.0.attn.to_k", "transformer_blocks.0.ff.linear_in",
           "single_transformer_blocks.0.attn.to_qkv_mlp_proj")  # fused weights compared between the two libraries

MODEL_FILE, LORA_FILE, STAMP = "diffusion_pytorch_model.safetensors", "klein_aitoolkit_r32.safetensors", "bench.json"
SEED, LORA_SEED = 0, 1


# -- the files (written once, by the parent) -----------------------------------------------------
def meta_transformer(config: dict):
    from diffusers import Flux2Transformer2DModel

    with torch.device("meta"):
        return Flux2Transformer2DModel(**config)


def seeded_tensor(name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """A random weight of ``shape`` in bf16: matrices ~ N(0, 1/fan_in), norm scales ~ 1 + N(0, 0.02)."""
    if len(shape) >= 2:
        fan_in = 1
        for n in shape[1:]:
            fan_in *= n
        return (torch.randn(shape, generator=gen) / fan_in**0.5).to(torch.bfloat16)
    values = torch.randn(shape, generator=gen) * 0.02
    return (values + 1.0 if "norm" in name else values).to(torch.bfloat16)


def write_safetensors(path: str, shapes: dict[str, tuple[tuple[int, ...], str]], tensor_of,
                      metadata: dict[str, str] | None = None) -> None:
    """A safetensors file written one tensor at a time (``tensor_of(name)``), never all of them in memory."""
    sizes = {"BF16": 2, "F16": 2, "F32": 4}
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (shape, dtype) in shapes.items():
        numel = 1
        for n in shape:
            numel *= n
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + numel * sizes[dtype]]}
        offset += numel * sizes[dtype]
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for name, (shape, _dtype) in shapes.items():
            tensor = tensor_of(name).contiguous()
            assert tuple(tensor.shape) == tuple(shape), (name, tensor.shape, shape)
            f.write(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")


def aitoolkit_targets(model) -> dict[str, tuple[int, int]]:
    """ai-toolkit's FLUX.2 LoRA modules (BFL names; the Linear layers of every double and single block, as
    tests/fixtures/trainers/flux2/flux2_aitoolkit_lora.safetensors has them) -> (in, out) from the live model."""
    out = {}
    for i, block in enumerate(model.transformer_blocks):
        attn = block.attn
        for side, q, proj, ff in (("img", attn.to_q, attn.to_out[0], block.ff),
                                  ("txt", attn.add_q_proj, attn.to_add_out, block.ff_context)):
            d = f"double_blocks.{i}.{side}_"
            out[d + "attn.qkv"] = (q.in_features, 3 * q.out_features)
            out[d + "attn.proj"] = (proj.in_features, proj.out_features)
            out[d + "mlp.0"] = (ff.linear_in.in_features, ff.linear_in.out_features)
            out[d + "mlp.2"] = (ff.linear_out.in_features, ff.linear_out.out_features)
    for i, block in enumerate(model.single_transformer_blocks):
        for bfl, layer in (("linear1", block.attn.to_qkv_mlp_proj), ("linear2", block.attn.to_out)):
            out[f"single_blocks.{i}.{bfl}"] = (layer.in_features, layer.out_features)
    return out


def write_model(model, workdir: str) -> int:
    """``model``'s config and seeded bf16 weights (diffusers' from_pretrained layout); returns its parameter count."""
    model.save_config(workdir)
    state = model.state_dict()
    gen = torch.Generator().manual_seed(SEED)
    write_safetensors(os.path.join(workdir, MODEL_FILE), {k: (tuple(v.shape), "BF16") for k, v in state.items()},
                      lambda k: seeded_tensor(k, tuple(state[k].shape), gen), {"format": "pt"})
    return sum(v.numel() for v in state.values())


def write_lora(model, path: str) -> dict[str, tuple[int, int]]:
    """A seeded rank-32 LoRA for ``model`` in ai-toolkit's layout, fp16; returns its modules (BFL names)."""
    gen = torch.Generator().manual_seed(LORA_SEED)
    targets = aitoolkit_targets(model)
    lora = {}
    for bfl, (fan_in, fan_out) in targets.items():
        key = f"diffusion_model.{bfl}"
        lora[f"{key}.lora_A.weight"] = (torch.randn(RANK, fan_in, generator=gen) / fan_in**0.5).half()
        lora[f"{key}.lora_B.weight"] = (torch.randn(fan_out, RANK, generator=gen) * 0.01).half()
    # ai-toolkit's own metadata keys (its fixture's MANIFEST): a PEFT-format file, so no .alpha (alpha = rank)
    write_safetensors(path, {k: (tuple(v.shape), "F16") for k, v in lora.items()}, lora.__getitem__,
                      {"format": "pt", "software": json.dumps({"name": "ai-toolkit"}),
                       "ss_base_model_version": "flux2_klein_4b", "name": "bench"})
    return targets


def write_files(plan: Plan, workdir: str) -> dict:
    """The transformer (config.json + safetensors) and the LoRA file in ``workdir``; reused when its stamp matches."""
    stamp = {"transformer": {k: list(v) if isinstance(v, tuple) else v for k, v in plan.transformer.items()},
             "seed": SEED, "lora_seed": LORA_SEED, "rank": RANK, "version": 1}
    stamp_path = os.path.join(workdir, STAMP)
    if os.path.exists(stamp_path):
        with open(stamp_path) as f:
            old = json.load(f)
        if old.get("stamp") == stamp:
            log(f"reusing the model and LoRA files in {workdir}")
            return old["info"]
    start = time.perf_counter()
    model = meta_transformer(plan.transformer)
    params = write_model(model, workdir)
    targets = write_lora(model, os.path.join(workdir, LORA_FILE))
    info = {"transformer_params_M": round(params / 1e6, 1), "model_file_GB": round(
        os.path.getsize(os.path.join(workdir, MODEL_FILE)) / 1024**3, 2), "lora_modules_bfl": len(targets),
        "lora_file_MB": round(os.path.getsize(os.path.join(workdir, LORA_FILE)) / 1e6, 1),
        "write_s": round(time.perf_counter() - start, 1)}
    with open(stamp_path, "w") as f:
        json.dump({"stamp": stamp, "info": info}, f, indent=1)
    return info


# -- one library, in its own process -------------------------------------------------------------
class FileWeights(Mapping):
    """The transformer's original weights, read from its file one tensor at a time (no second copy in memory)."""

    def __init__(self, path: str):
        from safetensors import safe_open

        self._file = safe_open(path, "pt")
        self._keys = list(self._file.keys())

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._file.get_tensor(key)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def build_pipeline(workdir: str):
    """The tiny built-in FLUX.2 [klein] pipeline with its transformer replaced by the one in ``workdir``."""
    from diffusers import Flux2Transformer2DModel

    from loradeck.core.families import tiny_pipeline

    pipe = tiny_pipeline("flux2")
    transformer = Flux2Transformer2DModel.from_pretrained(workdir, torch_dtype=torch.bfloat16).eval()
    pipe.register_modules(transformer=transformer)
    return pipe


class Side:
    """The calls one library makes for each step."""

    def __init__(self, library: str, pipe, lora: str):
        self.library, self.pipe, self.lora, self.deck = library, pipe, lora, None

    def first_load(self) -> None:
        if self.library == "diffusers":
            self.pipe.load_lora_weights(self.lora, adapter_name=STYLE)
            self.pipe.set_adapters([STYLE], [LOAD_WEIGHT])
        else:
            self.deck = Deck(self.pipe, label="bench", runtime=Runtime())  # a cold store, as in any new process
            self.deck.add(self.lora, name=STYLE, model=LOAD_WEIGHT)

    def set_adapters(self, weight: float) -> None:
        if self.library == "diffusers":
            self.pipe.set_adapters([STYLE], [weight])
        else:
            self.deck.set_adapters([STYLE], [weight])

    def set_weights(self, weight: float) -> None:  # diffusers has only set_adapters
        if self.library == "diffusers":
            self.pipe.set_adapters([STYLE], [weight])
        else:
            self.deck.set_weights(STYLE, model=weight)

    def fuse(self) -> None:
        if self.library == "diffusers":
            self.pipe.fuse_lora(lora_scale=1.0)
        else:
            self.deck.fuse(lora_scale=1.0)

    def unfuse(self) -> None:
        if self.library == "diffusers":
            self.pipe.unfuse_lora()
        else:
            self.deck.unfuse()

    def adapter(self) -> str:
        """The adapter's name in peft's layers (LoRA Deck keys adapters by content)."""
        if self.deck is None:
            return STYLE
        return next(key for key, spec in self.deck.stack.keyed() if spec.name == STYLE)

    def counts(self) -> tuple[int, int] | None:
        return None if self.deck is None else (self.deck.owner.runtime.store.reads, self.deck.owner.loads)


def worker(library: str, workdir: str, plan: Plan, out: str) -> None:
    import peft  # noqa: F401  (both libraries imported before any timing: diffusers imports peft at its first load)

    start = time.perf_counter()
    pipe = build_pipeline(workdir)
    result: dict = {"library": library, "model_load_s": time.perf_counter() - start,
                    "rss_after_model_GB": peak_rss_gb(), "samples": {}}
    samples = result["samples"]
    side = Side(library, pipe, os.path.join(workdir, LORA_FILE))
    transformer = pipe.transformer

    with Contention.window("load"):
        samples["load"] = [timed(side.first_load)]
    layers = lora_layers(transformer)
    result["peft_layers"] = sorted(name for name, _ in layers)
    counts = side.counts()

    # strength changes: diffusers' set_adapters; LoRA Deck's set_adapters (same call) and set_weights
    samples["set_adapters"], samples["set_weights"] = [], []
    with Contention.window("strength"):
        for i in range(plan.strength_repeats):
            samples["set_adapters"].append(timed(lambda w=CHANGE_WEIGHTS[i % 2]: side.set_adapters(w)))
        for i in range(plan.strength_repeats):
            samples["set_weights"].append(timed(lambda w=CHANGE_WEIGHTS[(i + 1) % 2]: side.set_weights(w)))
    if counts is not None:
        assert side.counts() == counts, f"a strength change re-read or re-injected ({counts} -> {side.counts()})"
        result["loradeck_reads_loads"] = counts
    key = side.adapter()
    result["scales"] = sorted({round(layer.scaling[key], 12) for _, layer in layers})
    result["active"] = sum(key in layer.active_adapters for _, layer in layers)

    # fuse / unfuse cycles, a strength change before each
    samples["fuse"], samples["unfuse"] = [], []
    for cycle in range(plan.cycles):
        side.set_weights(CYCLE_WEIGHTS[cycle % len(CYCLE_WEIGHTS)])
        with Contention.window("fuse"):
            samples["fuse"].append(timed(side.fuse))
        if cycle == 0:
            from safetensors.torch import save_file

            save_file({n: transformer.get_submodule(n).get_base_layer().weight.detach().clone() for n in SAMPLED},
                      os.path.join(os.path.dirname(out), f"fused_{library}.safetensors"))
        with Contention.window("unfuse"):
            samples["unfuse"].append(timed(side.unfuse))
    worst, changed = max_drift(transformer, FileWeights(os.path.join(workdir, MODEL_FILE)))
    result["drift"] = {"max_abs": worst, "tensors_changed": changed, "tensors": len(base_state(transformer))}
    result["busy"] = {"wall": Contention.wall, "others": Contention.others}
    result["peak_rss_GB"] = peak_rss_gb()
    with open(out, "w") as f:
        json.dump(result, f)


# -- the parent: files, processes, table ---------------------------------------------------------
def run_worker(library: str, workdir: str, args, index: int) -> dict:
    out = os.path.join(workdir, f"result_{index}_{library}.json")
    command = [sys.executable, os.path.abspath(__file__), "--worker", library, "--workdir", workdir]
    command += ["--small"] if args.small else []
    command += ["--threads", str(args.threads)] if args.threads else []
    command += ["--cycles", str(args.cycles)] if args.cycles else []
    command += ["--verbose"] if args.verbose else []
    command += ["--out", out]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    with open(out) as f:
        result = json.load(f)
    result["process_s"] = time.perf_counter() - started
    from safetensors.torch import load_file

    result["fused_sample"] = load_file(os.path.join(workdir, f"fused_{library}.safetensors"))
    return result


def busy_share(results: list[dict], *phases: str) -> float | None:
    wall = sum(r["busy"]["wall"].get(p, 0.0) for r in results for p in phases)
    others = sum(r["busy"]["others"].get(p, 0.0) for r in results for p in phases)
    return others / wall if wall > 0 else None


def rows_from(results: dict[str, list[dict]]) -> tuple[list[Row], dict]:
    def pooled(library: str, kind: str) -> list[float]:
        return [x for r in results[library] for x in r["samples"][kind]]

    def med(library: str, kind: str) -> float:
        return statistics.median(pooled(library, kind))

    every = results["diffusers"] + results["loradeck"]
    rows: list[Row] = []

    def compare(label, kind_d, kind_l, target, phase, note):
        d, ld = med("diffusers", kind_d), med("loradeck", kind_l)
        rows.append(Row(label, d, ld, f"<= {target}x", ld / d <= target, ld / d, note=note,
                        busy=busy_share(every, phase),
                        samples={"diffusers": pooled("diffusers", kind_d), "loradeck": pooled("loradeck", kind_l)}))

    n = len(results["loradeck"])
    compare("1. first load (file -> applied at a strength)", "load", "load", TARGET_LOAD, "load",
            f"one per process ({n} each): diffusers load_lora_weights + set_adapters; "
            "LoRA Deck Deck() on a cold store + add")
    compare("2a. strength change (set_adapters)", "set_adapters", "set_adapters", TARGET_STRENGTH, "strength",
            "diffusers: set_adapters; LoRA Deck: Deck.set_adapters (same arguments)")
    compare("2b. strength change (set_weights)", "set_weights", "set_weights", TARGET_STRENGTH, "strength",
            "diffusers: set_adapters (it has nothing else); LoRA Deck: set_weights")
    compare("3. fuse", "fuse", "fuse", TARGET_FUSE, "fuse",
            "diffusers safe_fusing=False (its default); LoRA Deck safe_fusing=True (its default), "
            "keeping the originals")
    compare("4. unfuse", "unfuse", "unfuse", TARGET_UNFUSE, "unfuse",
            "diffusers subtracts the delta again; LoRA Deck gives the untouched original back")
    drift = {lib: max(r["drift"]["max_abs"] for r in results[lib]) for lib in LIBRARIES}
    changed = {lib: max(r["drift"]["tensors_changed"] for r in results[lib]) for lib in LIBRARIES}
    cycles = len(results["loradeck"][0]["samples"]["fuse"])
    rows.append(Row(f"5. drift after {cycles} fuse/unfuse cycles (max |dw|)", drift["diffusers"], drift["loradeck"],
                    "LoRA Deck == 0", drift["loradeck"] == 0.0, fmt=".3g",
                    note=f"worst process; base tensors changed: diffusers {changed['diffusers']}, "
                         f"LoRA Deck {changed['loradeck']} of {results['loradeck'][0]['drift']['tensors']}"))
    rss = {lib: statistics.median(r["peak_rss_GB"] for r in results[lib]) for lib in LIBRARIES}
    base = {lib: statistics.median(r["rss_after_model_GB"] for r in results[lib]) for lib in LIBRARIES}
    rows.append(Row("6. peak RSS of the process (GiB)", rss["diffusers"], rss["loradeck"], "report",
                    ratio=rss["loradeck"] / rss["diffusers"], fmt=".2f",
                    note=f"after loading the transformer: diffusers {base['diffusers']:.2f}, "
                         f"LoRA Deck {base['loradeck']:.2f} GiB; LoRA Deck's fuse keeps each original weight"))

    checks: dict = {}
    layers = {lib: {tuple(r["peft_layers"]) for r in results[lib]} for lib in LIBRARIES}
    assert layers["diffusers"] == layers["loradeck"] and len(layers["loradeck"]) == 1, "different LoRA layers"
    checks["peft_layers"] = len(layers["loradeck"].pop())
    scales = {lib: {tuple(r["scales"]) for r in results[lib]} for lib in LIBRARIES}
    assert scales["diffusers"] == scales["loradeck"] and len(scales["loradeck"]) == 1, scales
    checks["scales_after_changes"] = list(scales["loradeck"].pop())
    fused_d, fused_l = results["diffusers"][0]["fused_sample"], results["loradeck"][0]["fused_sample"]
    checks["fused_max_abs_diff"] = max((fused_d[k].float() - fused_l[k].float()).abs().max().item() for k in fused_d)
    checks["fused_ulp_scale"] = max(fused_d[k].float().abs().max().item() for k in fused_d) * 2**-8
    checks["loradeck_reads_loads"] = results["loradeck"][0].get("loradeck_reads_loads")
    return rows, checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny widths, as a smoke run")
    parser.add_argument("--repeats", type=int, help="processes per library (default 3; at least 3 for the table)")
    parser.add_argument("--cycles", type=int, help="fuse/unfuse cycles per process (default 3, --small 2)")
    parser.add_argument("--workdir", help="keep the model and LoRA files here, and reuse them (outside the repo); "
                                          "default: a temporary directory, deleted afterwards")
    parser.add_argument("--json", metavar="PATH", help="also write results as JSON to PATH (outside the repo)")
    parser.add_argument("--threads", type=int, help="torch threads in each process (default: torch's choice)")
    parser.add_argument("--verbose", action="store_true", help="show diffusers/peft/transformers warnings")
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    plan = SMALL if args.small else FULL
    if args.cycles:
        plan = dataclasses.replace(plan, cycles=args.cycles)
    for path in (args.json, args.workdir):
        if path and not outside_repo(path):
            parser.error(f"{path}: please keep benchmark files outside the repository")
    start_up(args.threads, quiet=not args.verbose)
    if args.worker:
        worker(args.worker, args.workdir, plan, args.out)
        return 0

    import diffusers
    import peft
    import transformers

    repeats = args.repeats or plan.repeats
    started = time.perf_counter()
    versions = {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
                "peft": peft.__version__, "transformers": transformers.__version__, "loradeck": code_version()}
    load_start = os.getloadavg()
    log(f"LoRA Deck family benchmark: {plan.name}; torch threads {args.threads or torch.get_num_threads()}, "
        f"cpu count {os.cpu_count()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    log(f"load average at start: {load_start[0]:.2f}; {_memory()}")
    workdir = args.workdir or tempfile.mkdtemp(prefix="loradeck-bench-family-")
    os.makedirs(workdir, exist_ok=True)
    results: dict[str, list[dict]] = {lib: [] for lib in LIBRARIES}
    try:
        info = write_files(plan, workdir)
        log(f"transformer {info['transformer_params_M']}M params ({info['model_file_GB']} GiB file), LoRA rank {RANK} "
            f"on {info['lora_modules_bfl']} BFL modules ({info['lora_file_MB']} MB, fp16); written in "
            f"{info['write_s']} s")
        for i in range(repeats):
            order = LIBRARIES if i % 2 == 0 else LIBRARIES[::-1]
            for library in order:
                r = run_worker(library, workdir, args, i)
                results[library].append(r)
                s = r["samples"]
                log(f"  #{i + 1} {TITLES[library]}: model {r['model_load_s']:.1f} s, first load {s['load'][0]:.3f} s, "
                    f"set_adapters {statistics.median(s['set_adapters']):.4f} s, "
                    f"set_weights {statistics.median(s['set_weights']):.4f} s, "
                    f"fuse {statistics.median(s['fuse']):.3f} s, unfuse {statistics.median(s['unfuse']):.3f} s, "
                    f"drift {r['drift']['max_abs']:.3g}, peak RSS {r['peak_rss_GB']:.2f} GiB "
                    f"(process {r['process_s']:.0f} s)")
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    rows, checks = rows_from(results)
    total = time.perf_counter() - started
    log("")
    log(table(rows, "seconds are medians over every process's samples; ratio = LoRA Deck / diffusers (lower is "
                    "better); busy = CPU other processes used during that phase, in % of one core ('!' = timings "
                    "likely inflated)"))
    log("")
    log(f"LoRA layers: the same {checks['peft_layers']} on both sides (each BFL qkv is diffusers' q, k and v); "
        f"scales after the strength changes: {checks['scales_after_changes']} on both; LoRA Deck store reads / "
        f"owner.loads unchanged by the strength changes ({checks['loradeck_reads_loads']})")
    log(f"fused weights (first cycle, {len(SAMPLED)} layers), diffusers vs LoRA Deck: max |diff| "
        f"{checks['fused_max_abs_diff']:.3g} (one bf16 ulp at their largest value: {checks['fused_ulp_scale']:.3g})")
    share = busy_share(results["diffusers"] + results["loradeck"], "load", "strength", "fuse", "unfuse")
    log(f"total runtime {total:.1f} s; load average at end {os.getloadavg()[0]:.2f}")
    if share is not None:
        log(f"other processes used {100 * share:.0f}% of one core during the measured phases"
            + (" -- the machine was busy, so timings are inflated; rerun when it is idle" if share > BUSY else ""))
    failed = [r.label for r in rows if r.passed is False]
    log("all targets met" if not failed else f"FAILED: {', '.join(failed)}")
    if args.json:
        for lib in LIBRARIES:
            for r in results[lib]:
                r.pop("fused_sample", None)
        with open(args.json, "w") as f:
            json.dump({"plan": asdict(plan), "versions": versions, "checks": checks, "total_s": total,
                       "loadavg": {"start": load_start, "end": os.getloadavg()},
                       "rows": [asdict(r) for r in rows], "processes": results}, f, indent=1, default=str)
        log(f"wrote {args.json}")
    return 1 if failed else 0


def _memory() -> str:
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) for line in f}
    except (OSError, ValueError, IndexError):
        return "memory unknown"
    return f"memory available {info['MemAvailable'] / 1024**2:.1f} of {info['MemTotal'] / 1024**2:.1f} GiB"


if __name__ == "__main__":
    sys.exit(main())
