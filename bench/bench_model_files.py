"""Memory and first-load time of one FLUX.1-architecture denoiser file as bf16, ComfyUI fp8 and Q4 GGUF.

    python bench/bench_model_files.py                 # Klein size: FLUX.1's width (3072), 5 double + 20 single blocks
                                                      # (4.4B parameters, a 8.8 GB bf16 file): ~20 GB RAM, ~15 GB disk
    python bench/bench_model_files.py --size small    # 1 double + 4 single blocks (0.9B): ~4 GB RAM, ~3.5 GB disk
    python bench/bench_model_files.py --size flux1    # FLUX.1 dev itself (19 + 38 blocks, 11.9B): ~50 GB RAM
    python bench/bench_model_files.py --json /tmp/m.json

Three files of the same random weights (seeded, BFL key names, ``model.diffusion_model.``-free as in
``models/diffusion_models``) are written to a temporary folder, streamed tensor by tensor so writing never holds a
whole model: bf16 safetensors; ComfyUI's fp8 (``comfy_quant`` layers: ``float8_e4m3fn`` weight, float32
``weight_scale`` = amax / 448, the layers ComfyUI quantizes, the embedders and final layer in bf16); GGUF Q4_0 (the
tensors ComfyUI-GGUF's llama-quantize patch quantizes, ggml's Q4_0 rounding; F32 for 1-D tensors, BF16 for the rest).
Each is then loaded in a fresh process with ``core.models.single_file.load_denoiser(path, torch.bfloat16)``, the
path **Load Diffusion Model** takes for the denoiser, and the process reports its peak resident set
(``ru_maxrss``) minus the same figure before the load, the resident set after it, and the load's wall time (the
file is in the page cache: it was just written). Targets (issue 24): fp8 about 1/2 and Q4 about 1/4 of bf16's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

import torch
from common import log

SIZES = {"small": (1, 4), "klein": (5, 20), "flux1": (19, 38)}  # (double, single) blocks at FLUX.1's width
WIDTH, HEAD, IN, CONTEXT, POOLED = 3072, 128, 64, 4096, 768
KEEP = ("img_in.", "txt_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer.")  # never quantized
GIB = 1024**3


def flux_shapes(double: int, single: int, h: int = WIDTH) -> dict[str, tuple[int, ...]]:
    """Every tensor of a FLUX.1-architecture denoiser (BFL names, guidance embedder as in FLUX.1 dev)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def linear(name: str, out: int, inp: int) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (out, inp), (out,)

    for name, inp in (("img_in", IN), ("txt_in", CONTEXT)):
        linear(name, h, inp)
    for name, inp in (("time_in", 256), ("vector_in", POOLED), ("guidance_in", 256)):
        linear(f"{name}.in_layer", h, inp)
        linear(f"{name}.out_layer", h, h)
    linear("final_layer.linear", IN, h)
    linear("final_layer.adaLN_modulation.1", 2 * h, h)
    for i in range(double):
        for side in ("img", "txt"):
            b = f"double_blocks.{i}.{side}_"
            linear(b + "mod.lin", 6 * h, h)
            linear(b + "attn.qkv", 3 * h, h)
            linear(b + "attn.proj", h, h)
            linear(b + "mlp.0", 4 * h, h)
            linear(b + "mlp.2", h, 4 * h)
            shapes[b + "attn.norm.query_norm.scale"] = shapes[b + "attn.norm.key_norm.scale"] = (HEAD,)
    for i in range(single):
        b = f"single_blocks.{i}."
        linear(b + "linear1", 7 * h, h)
        linear(b + "linear2", h, 5 * h)
        linear(b + "modulation.lin", 3 * h, h)
        shapes[b + "norm.query_norm.scale"] = shapes[b + "norm.key_norm.scale"] = (HEAD,)
    return shapes


_NOISE: list[torch.Tensor] = []  # 16 Mi seeded N(0, 0.02) values, cut into every tensor at a per-tensor offset


def weights(name: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A tensor of ``shape`` in bf16: norm scales 1, the rest N(0, 0.02) values taken from one seeded block at an
    offset of its own (a memory benchmark needs the sizes, not independent values; drawing 4.6B numbers would
    take longer than the benchmark)."""
    if name.endswith(".scale"):
        return torch.ones(shape, dtype=torch.bfloat16)
    if not _NOISE:
        _NOISE.append((torch.randn(1 << 24, generator=torch.Generator().manual_seed(0)) * 0.02).to(torch.bfloat16))
    noise, count = _NOISE[0], int(torch.Size(shape).numel())
    start = (seed * 7919) % noise.numel()
    repeats = -(-(start + count) // noise.numel())
    return (noise.repeat(repeats) if repeats > 1 else noise)[start: start + count].reshape(shape).clone()


def quantized(name: str, shape: tuple[int, ...]) -> bool:
    return name.endswith(".weight") and len(shape) == 2 and not name.startswith(KEEP)


# -- writers: one tensor in memory at a time ---------------------------------------------------------------------
def _bytes(tensor: torch.Tensor) -> bytes:
    view = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[tensor.element_size()]
    return tensor.contiguous().view(view).numpy().tobytes()


def write_safetensors(path: str, entries: list[tuple[str, str, tuple, object]]) -> None:
    """``entries``: (key, safetensors dtype, shape, make() -> tensor), written in order."""
    sizes = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "U8": 1}
    header, offset = {}, 0
    for key, dtype, shape, _ in entries:
        n = sizes[dtype] * (int(torch.Size(shape).numel()) if shape else 1)
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, _, _, make in entries:
            f.write(_bytes(make()))


def q4_0(tensor: torch.Tensor) -> torch.Tensor:
    """ggml's Q4_0 blocks of a 2-D tensor: per 32 values an fp16 d = (signed absmax) / -8 and 16 bytes of 4-bit
    codes ``min(15, int(x / d + 8.5))``, value j in the low nibble of byte j, value j + 16 in the high one."""
    x = tensor.float().reshape(-1, 32)
    index = x.abs().argmax(dim=1, keepdim=True)
    d = x.gather(1, index) / -8
    inverse = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = (x * inverse + 8.5).clamp(0, 15.99).to(torch.uint8).clamp(max=15)
    packed = q[:, :16] | (q[:, 16:] << 4)
    return torch.cat([d.to(torch.float16).view(torch.uint8).reshape(-1, 2), packed], dim=1).reshape(-1)


def write_gguf(path: str, entries: list[tuple[str, int, tuple, object]]) -> None:
    """A GGUF v3 file: ``entries`` (name, GGML type, torch shape, make() -> uint8/float tensor of its bytes)."""
    sizes = {0: (1, 4), 2: (32, 18), 30: (1, 2)}  # F32, Q4_0, BF16: (block, bytes)
    kv = b"".join((struct.pack("<Q", len(k)) + k.encode() + struct.pack("<I", 8) + struct.pack("<Q", len(v))
                   + v.encode()) for k, v in (("general.architecture", "flux"),))
    infos, offset, spans = b"", 0, []
    for name, kind, shape, _ in entries:
        block, size = sizes[kind]
        n = int(torch.Size(shape).numel()) // block * size
        dims = tuple(reversed(shape))
        infos += struct.pack("<Q", len(name)) + name.encode() + struct.pack("<I", len(dims))
        infos += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", kind, offset)
        spans.append(n)
        offset += n + (-n % 32)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(entries), 1) + kv + infos
    with open(path, "wb") as f:
        f.write(head + b"\0" * (-len(head) % 32))
        for (_, _, _, make), n in zip(entries, spans, strict=True):
            data = make()
            f.write(data.contiguous().view(torch.uint8).numpy().tobytes() if data.dtype != torch.uint8
                    else data.numpy().tobytes())
            f.write(b"\0" * (-n % 32))


def make_files(folder: str, double: int, single: int) -> dict[str, str]:
    shapes = flux_shapes(double, single)
    seeds = {name: i for i, name in enumerate(shapes)}
    files = {k: os.path.join(folder, f"flux-bench-{k}.{'gguf' if k == 'q4_0' else 'safetensors'}")
             for k in ("bf16", "fp8", "q4_0")}

    def make(name, shape):
        return lambda: weights(name, shape, seeds[name])

    write_safetensors(files["bf16"], [(n, "BF16", s, make(n, s)) for n, s in shapes.items()])
    fp8 = []
    for name, shape in shapes.items():
        if not quantized(name, shape):
            fp8.append((name, "BF16", shape, make(name, shape)))
            continue
        layer = name[: -len(".weight")]
        scale = lambda n=name, s=shape: (weights(n, s, seeds[n]).float().abs().max() / 448).reshape(())  # noqa: E731
        fp8.append((name, "F8_E4M3", shape, lambda n=name, s=shape, f=scale: (weights(n, s, seeds[n]).float() / f())
                    .clamp(-448, 448).to(torch.float8_e4m3fn)))
        fp8.append((layer + ".weight_scale", "F32", (), scale))
        conf = torch.tensor(list(b'{"format": "float8_e4m3fn"}'), dtype=torch.uint8)
        fp8.append((layer + ".comfy_quant", "U8", tuple(conf.shape), lambda c=conf: c))
    write_safetensors(files["fp8"], fp8)
    gguf = []
    for name, shape in shapes.items():
        if quantized(name, shape):
            gguf.append((name, 2, shape, lambda n=name, s=shape: q4_0(weights(n, s, seeds[n]))))
        elif len(shape) == 1:
            gguf.append((name, 0, shape, lambda n=name, s=shape: weights(n, s, seeds[n]).float()))
        else:
            gguf.append((name, 30, shape, make(name, shape)))
    write_gguf(files["q4_0"], gguf)
    return files


# -- measuring, each load in its own process --------------------------------------------------------------------
def _resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> None:
    """Linux: restart this process's peak resident set (VmHWM) from its current size (importing the libraries can
    peak above what they keep)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def measure(path: str) -> dict:
    """Load ``path`` with Load Diffusion Model's denoiser path in this (fresh) process and report its memory."""
    import diffusers  # noqa: F401  (the libraries' own memory is not the model's)
    import transformers  # noqa: F401
    from diffusers import FluxTransformer2DModel  # noqa: F401

    from loradeck.core.models.quantized.loading import summary
    from loradeck.core.models.single_file import load_denoiser

    _reset_peak()
    resident = _resident()
    start = time.perf_counter()
    model = load_denoiser(path, torch.bfloat16)
    seconds = time.perf_counter() - start
    peak = _peak()
    params = sum(p.numel() for p in model.parameters()) + sum(
        m.in_features * m.out_features for m in model.modules() if hasattr(m, "stored"))
    return {"file_bytes": os.path.getsize(path), "peak_bytes": peak - resident,
            "resident_bytes": _resident() - resident, "seconds": seconds, "parameters": params,
            "kept": summary(model)}


def run(size: str, keep: str | None) -> dict:
    double, single = SIZES[size]
    with tempfile.TemporaryDirectory(dir=keep) as folder:
        start = time.perf_counter()
        files = make_files(folder, double, single)
        log(f"wrote {len(files)} files of a {double} + {single} block FLUX.1-width denoiser in "
            f"{time.perf_counter() - start:.0f} s")
        rows = {}
        for kind, path in files.items():
            log(f"loading {os.path.basename(path)} ({os.path.getsize(path) / GIB:.2f} GiB) in a fresh process")
            out = subprocess.run([sys.executable, __file__, "--measure", path], check=True, capture_output=True,
                                 text=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS",
                                                                                                  "2")})
            rows[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    return {"size": size, "blocks": [double, single], "rows": rows}


def table(result: dict) -> str:
    base = result["rows"]["bf16"]
    lines = [f"FLUX.1-architecture denoiser, {result['blocks'][0]} double + {result['blocks'][1]} single blocks, "
             f"{base['parameters'] / 1e9:.2f}B parameters, loaded in bfloat16",
             "| file | size | peak RSS of the load | vs bf16 | resident after | first load | vs bf16 |",
             "|---|---|---|---|---|---|---|"]
    for kind, row in result["rows"].items():
        lines.append(f"| {kind} | {row['file_bytes'] / GIB:.2f} GiB | {row['peak_bytes'] / GIB:.2f} GiB | "
                     f"{row['peak_bytes'] / base['peak_bytes']:.2f}x | {row['resident_bytes'] / GIB:.2f} GiB | "
                     f"{row['seconds']:.1f} s | {row['seconds'] / base['seconds']:.2f}x |")
    lines += [f"{kind}: {row['kept']}" for kind, row in result["rows"].items() if kind != "bf16"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="klein")
    parser.add_argument("--tmp", help="where the temporary files go (default: the system's temp folder)")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: load one file in this process
    args = parser.parse_args(argv)
    if args.measure:
        import logging

        logging.disable(logging.WARNING)
        log(json.dumps(measure(args.measure)))
        return 0
    result = run(args.size, args.tmp)
    log(table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    peaks = {kind: row["peak_bytes"] for kind, row in result["rows"].items()}
    ok = peaks["fp8"] <= 0.6 * peaks["bf16"] and peaks["q4_0"] <= 0.35 * peaks["bf16"]  # about 1/2 and 1/4
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
