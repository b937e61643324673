"""torch.compile and switching adapters: diffusers' hotswap path vs LoRA Deck's envelope (run by bench_lora.py).

Both sides compile the same UNet (the ``--small`` layout in float32: inductor on the CPU takes minutes per
compile for the SD1.5 size), load the same two UNet-only rank-32 files, then do 20 operations, each followed
by one UNet call: switch to the other file and reweight, alternately.

- diffusers: ``enable_lora_hotswap(target_rank=32)`` before the first ``load_lora_weights``, then
  ``unet.compile()``; a switch is ``load_lora_weights(other, adapter_name=..., hotswap=True)``, a reweight
  ``set_adapters([name], [w])``.
- LoRA Deck: ``Deck.add`` then ``Deck.compile(max_rank=32, max_adapters=1, targets="loaded")`` (the same
  envelope as diffusers': the modules of the first file, rank 32); a switch is ``Deck.remove`` + ``Deck.add``
  of the other file, a reweight ``Deck.set_weights``.

Recompiles are frames dynamo compiled again after the first call (``torch._dynamo.utils.counters``).
"""

from __future__ import annotations

import os
import time

import common as B
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from loradeck.core.api import Deck
from loradeck.core.runtime import Runtime

SWITCHES = 20
HOTSWAP_NAME = "default_0"
WEIGHTS = (0.7, 0.4, 1.0, 0.55, 0.85)


def _compiled_frames() -> int:
    return int(counters["frames"]["total"])


def _unet_inputs(pipe):
    config = pipe.unet.config
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(1, config.in_channels, config.sample_size, config.sample_size, generator=gen)
    text = torch.randn(1, 77, config.cross_attention_dim, generator=gen)
    return sample, torch.tensor(10), text


def _forward(pipe, inputs):
    with torch.inference_mode():
        return pipe.unet(inputs[0], inputs[1], encoder_hidden_states=inputs[2]).sample


def _ops():
    """(kind, argument) x 20: switch to the other file, reweight, alternately."""
    out = []
    for i in range(SWITCHES):
        out.append(("switch", (i // 2 + 1) % 2) if i % 2 == 0 else ("reweight", WEIGHTS[(i // 2) % len(WEIGHTS)]))
    return out


def _side_diffusers(pipe, files, backend, inputs):
    pipe.enable_lora_hotswap(target_rank=B.RANK)
    pipe.load_lora_weights(files[0], adapter_name=HOTSWAP_NAME)
    pipe.unet.compile(backend=backend)
    frames = _compiled_frames()
    first = B.timed(lambda: _forward(pipe, inputs))
    after_first = _compiled_frames()
    start = time.perf_counter()
    for kind, arg in _ops():
        if kind == "switch":
            pipe.load_lora_weights(files[arg], adapter_name=HOTSWAP_NAME, hotswap=True)
        else:
            pipe.set_adapters([HOTSWAP_NAME], [arg])
        out = _forward(pipe, inputs)
    return first, time.perf_counter() - start, after_first - frames, _compiled_frames() - after_first, out


def _side_deck(pipe, files, backend, inputs):
    deck = Deck(pipe, label="bench-compile", runtime=Runtime())
    names = ("A", "B")
    deck.add(files[0], name=names[0])
    deck.compile(backend=backend, max_rank=B.RANK, max_adapters=1, targets="loaded")
    frames = _compiled_frames()
    first = B.timed(lambda: _forward(pipe, inputs))
    after_first = _compiled_frames()
    current = 0
    start = time.perf_counter()
    for kind, arg in _ops():
        if kind == "switch":
            deck.remove(names[current])
            deck.add(files[arg], name=names[arg])
            current = arg
        else:
            deck.set_weights(names[current], model=arg)
        out = _forward(pipe, inputs)
    return first, time.perf_counter() - start, after_first - frames, _compiled_frames() - after_first, out


def run_compile(tmp: str, backend: str, log) -> tuple[list, dict]:
    """The compile rows: first compile, and 20 switches/reweights (time, recompiles), both libraries."""
    cfg = B.SMALL
    files = []
    for seed in (1, 2):
        pipe = B.build_pipeline(cfg, dtype=torch.float32)
        path = os.path.join(tmp, f"compile_{seed}.safetensors")
        B.write_lora(pipe, path, seed=10 + seed, text=False)
        files.append(path)
    inputs = _unet_inputs(pipe)
    results = {}
    for who, side in (("diffusers", _side_diffusers), ("loradeck", _side_deck)):
        torch._dynamo.reset()
        pipe = B.build_pipeline(cfg, dtype=torch.float32)
        with B.Contention.window(f"compile-{who}"):
            results[who] = side(pipe, files, backend, inputs)
        first, ops, frames_first, recompiles, _ = results[who]
        log(f"  compile ({backend}) {who}: first call {first:.2f} s ({frames_first} frames), "
            f"{SWITCHES} switches/reweights {ops:.2f} s, {recompiles} recompiles")
        del pipe
    torch._dynamo.reset()
    diff = (results["diffusers"][4] - results["loradeck"][4]).abs().max().item()
    d, ours = results["diffusers"], results["loradeck"]
    busy = B.Contention.share("compile-diffusers", "compile-loradeck")
    rows = [
        B.Row(f"6. first compiled call (small UNet, {backend})", d[0], ours[0], "report", None, ours[0] / d[0],
              busy=busy,
              note=f"includes compiling; frames compiled: diffusers {d[2]}, LoRA Deck {ours[2]}"),
        B.Row(f"7. {SWITCHES} switches/reweights + a call each", d[1], ours[1], "report", None, ours[1] / d[1],
              busy=busy,
              note="diffusers: hotswap load / set_adapters; LoRA Deck: remove+add / set_weights"),
        B.Row(f"8. recompiles during those {SWITCHES}", d[3], ours[3], "LoRA Deck == 0", ours[3] == 0, None,
              note=f"frames dynamo compiled again; outputs after the last op differ by {diff:.2g} (float32)"),
    ]
    info = {"backend": backend, "switches": SWITCHES, "model": cfg.name.replace("fp16", "float32"),
            "outputs_max_abs_diff": diff,
            **{who: {"first_s": r[0], "ops_s": r[1], "frames_first": r[2], "recompiles": r[3]}
               for who, r in results.items()}}
    return rows, info
