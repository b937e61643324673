"""What the benchmarks share: the SD1.5-size and small configs, the pipeline and LoRA files they build from
seeded configs (nothing is downloaded), timing, the machine's contention, result rows and their table,
the base-weight drift check, the code version and start-up.

bench_lora.py, bench_compile.py, bench_grid.py and bench_family.py import this module; it imports none of them.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import resource
import subprocess
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from safetensors.torch import save_file

import loradeck
from loradeck.core.models.tiny_parts import tiny_clip_tokenizer, tiny_vae

REPO = os.path.dirname(os.path.abspath(loradeck.__file__))
BUSY = 0.10  # other processes using more than this share of one core during a row's timings: flagged

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
RANK = 32
# Adapter names. Not single letters: diffusers 0.42 flags "missing keys" by substring (``"b" in "down_blocks..."``).
STYLE, DETAIL = "style", "detail"
ADAPTERS = (STYLE, DETAIL)


@dataclass(frozen=True)
class Config:
    name: str
    unet: dict
    text: dict
    load_repeats: int  # timed first loads (each but the last followed by unloading both sides)
    reload_repeats: int  # timed diffusers unload+reload
    cheap_repeats: int  # timed strength changes, per kind


FULL = Config(
    name="SD1.5-size (UNet 320/640/1280/1280, CLIP-L 12x768), fp16",
    unet=dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
              cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32),
    text=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
              projection_dim=768),
    load_repeats=7,
    reload_repeats=3,
    cheap_repeats=9,
)
SMALL = Config(
    name="small (UNet 32/64/128/128, CLIP 2x64), fp16",
    unet=dict(sample_size=32, block_out_channels=(32, 64, 128, 128), layers_per_block=2,
              cross_attention_dim=64, attention_head_dim=8, norm_num_groups=32),
    text=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256, projection_dim=64),
    load_repeats=5,
    reload_repeats=3,
    cheap_repeats=9,
)


# -- building -----------------------------------------------------------------------------------
def build_pipeline(cfg: Config, seed: int = 0, dtype: torch.dtype = torch.float16):
    """A StableDiffusionPipeline with random weights from configs: UNet + CLIP text encoder at cfg size, tiny VAE."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_clip_tokenizer()
    vocab = 49408  # CLIP's; must cover the tokenizer's ids
    assert vocab >= len(tokenizer)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        use_linear_projection=False,  # SD1.5: proj_in / proj_out are 1x1 Conv2d
        **cfg.unet,
    ).to(dtype).eval()
    torch.manual_seed(seed + 1)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
        **cfg.text,
    )).to(dtype).eval()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(vae=tiny_vae(seed).to(dtype), text_encoder=text_encoder, tokenizer=tokenizer,
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


def write_lora(pipe, path: str, seed: int, text: bool = True) -> tuple[int, int]:
    """A diffusers-format rank-32 LoRA for ``pipe``; returns (unet modules, text encoder modules)."""
    gen = torch.Generator().manual_seed(seed)
    sd, counts = {}, []
    parts = (("unet", pipe.unet, UNET_TARGETS), ("text_encoder", pipe.text_encoder, TEXT_TARGETS if text else ()))
    for prefix, model, suffixes in parts:
        targets = lora_targets(model, suffixes)
        for name, module in targets:
            down, up = lora_pair(module, RANK, gen)
            sd[f"{prefix}.{name}.lora_A.weight"], sd[f"{prefix}.{name}.lora_B.weight"] = down, up
        counts.append(len(targets))
    save_file(sd, path, metadata={"format": "pt"})
    return counts[0], counts[1]


# -- measuring ----------------------------------------------------------------------------------
def _cpu_seconds() -> tuple[float, float]:
    """(CPU seconds used by the whole machine, by this process) so far; machine total is 0 where unknown."""
    ours = sum(os.times()[:2])
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, ours
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK"), ours


class Contention:
    """CPU time other processes used during each phase: a busy machine inflates wall-clock timings.

    Torch runs one thread per core, so a single busy neighbour can slow tensor work several-fold.
    Measured over whole phases (CPU accounting ticks are 10 ms, too coarse for one 5 ms call).
    """

    wall: dict[str, float] = {}
    others: dict[str, float] = {}

    @classmethod
    @contextlib.contextmanager
    def window(cls, key: str):
        before, start = _cpu_seconds(), time.perf_counter()
        try:
            yield
        finally:
            wall, after = time.perf_counter() - start, _cpu_seconds()
            if before[0] and after[0]:
                cls.wall[key] = cls.wall.get(key, 0.0) + wall
                cls.others[key] = cls.others.get(key, 0.0) + max(0.0, (after[0] - before[0]) - (after[1] - before[1]))

    @classmethod
    def share(cls, *keys: str) -> float | None:
        """Other processes' CPU use during the timed sections of ``keys`` (all if none), as a fraction of one core."""
        keys = keys or tuple(cls.wall)
        wall = sum(cls.wall.get(k, 0.0) for k in keys)
        return sum(cls.others.get(k, 0.0) for k in keys) / wall if wall > 0 else None


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def in_turn(i: int, side_d: Callable[[], object], side_l: Callable[[], object]) -> None:
    """Repeat ``i`` of a timed step: diffusers' side first on even repeats, LoRA Deck's on odd ones (whoever goes
    second meets the memory the first one just freed or left behind)."""
    for side in (side_d, side_l) if i % 2 == 0 else (side_l, side_d):
        side()


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def code_version() -> str:
    """The repository's commit, and whether core/ has uncommitted changes (the code measured)."""
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "core"], capture_output=True,
                               text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + (" + uncommitted changes in core/" if dirty else "")


def outside_repo(path: str) -> bool:
    return not os.path.abspath(path).startswith(REPO + os.sep)


# -- the model's own weights --------------------------------------------------------------------
def lora_layers(model: torch.nn.Module):
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(n, m) for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def base_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's own tensors under their original names (peft's ``base_layer`` unwrapped, LoRA tensors skipped)."""
    out = {}
    for key, value in model.state_dict().items():
        if ".lora_" in key:
            continue
        out[key.replace(".base_layer.", ".")] = value
    return out


def max_drift(model: torch.nn.Module, reference: Mapping[str, torch.Tensor]) -> tuple[float, int]:
    """Max |w - w_original| over every base tensor, and how many tensors differ at all. ``reference`` may be
    lazy (e.g. read from a file one tensor at a time)."""
    now = base_state(model)
    if set(now) != set(reference):
        missing, extra = sorted(set(reference) - set(now)), sorted(set(now) - set(reference))
        raise AssertionError(f"state dict keys changed: missing {missing[:3]}, extra {extra[:3]}")
    worst, changed = 0.0, 0
    for key in now:
        ref = reference[key]
        if torch.equal(now[key], ref):
            continue
        changed += 1
        worst = max(worst, (now[key].float() - ref.float()).abs().max().item())
    return worst, changed


# -- results ------------------------------------------------------------------------------------
@dataclass
class Row:
    label: str
    diffusers: float | None  # seconds (drift row: max abs difference)
    loradeck: float | None
    target: str = ""
    passed: bool | None = None  # None: reported, no target
    ratio: float | None = None  # LoRA Deck / diffusers unless the note says otherwise
    note: str = ""
    busy: float | None = None  # other processes' share of one core while this row was timed
    samples: dict = field(default_factory=dict)
    fmt: str = ".4f"  # how the two values print (".3g" for a drift, ".2f" for GiB)


def table(rows: list[Row], footer: str) -> str:
    head = (f"{'measurement':<54} {'diffusers':>10} {'LoRA Deck':>10} {'ratio':>8}  {'target':<18} "
            f"{'result':<6} {'busy':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = [("-" if x is None else str(x) if isinstance(x, int) else format(x, r.fmt))
                 for x in (r.diffusers, r.loradeck)]
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        result = "info" if r.passed is None else ("PASS" if r.passed else "FAIL")
        busy = "" if r.busy is None else f"{100 * r.busy:.0f}%" + ("!" if r.busy > BUSY else "")
        lines.append(f"{r.label:<54} {cells[0]:>10} {cells[1]:>10} {ratio:>8}  {r.target:<18} {result:<6} {busy:>5}")
        if r.note:
            lines.append(f"    {r.note}")
    lines.append(footer)
    return "\n".join(lines)


def log(msg: str) -> None:
    """A progress line, on stdout at once (the benchmarks' output is their result)."""
    print(msg, flush=True)  # noqa: T201


def start_up(threads: int | None, quiet: bool = True) -> None:
    """The libraries' warnings off (unless not ``quiet``) and torch's thread count (None: torch's choice)."""
    if quiet:
        quiet_libraries()
    if threads:
        torch.set_num_threads(threads)


def quiet_libraries() -> None:
    warnings.filterwarnings("ignore")
    for name in ("diffusers", "peft", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    dlogging.set_verbosity_error()
    dlogging.disable_progress_bar()
    tlogging.set_verbosity_error()
    tlogging.disable_progress_bar()


