"""Makes the demo LoRA pair for the built-in tiny Wan 2.2 models (the files are shipped; this remakes them).

    python -m loradeck.demo.make_wan_loras      # a second; the same files every time

``loradeck-demo-wan22-high`` and ``loradeck-demo-wan22-low`` are a high-noise / low-noise pair in ComfyUI's layout
(``diffusion_model.blocks.N.self_attn.q.lora_down.weight`` + ``.alpha``, as Wan2.2-Lightning and lightx2v pairs
ship): seeded random pairs on every attention and feed-forward layer of the tiny transformer. The tiny model is
random, so they change coloured noise into other coloured noise; the video example shows the pair loads into the
two experts with a strength each and the frames reach the video nodes.
"""

from __future__ import annotations

import json
import os
import struct

import torch
from safetensors.torch import save

from ..core.files.atomic import write_atomic

OUT = os.path.join(os.path.dirname(__file__), "models", "loras")
HIGH, LOW = "loradeck-demo-wan22-high.safetensors", "loradeck-demo-wan22-low.safetensors"
WIDTH, FFN, BLOCKS, RANK, ALPHA = 32, 64, 2, 4, 4.0  # the tiny Wan transformer (core/families/wan/tiny.py)
LAYERS = {**{f"{a}.{x}": (WIDTH, WIDTH) for a in ("self_attn", "cross_attn") for x in "qkvo"},
          "ffn.0": (FFN, WIDTH), "ffn.2": (WIDTH, FFN)}  # original name -> (out, in)


def pair_file(seed: int, gain: float) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for block in range(BLOCKS):
        for name, (out, inp) in LAYERS.items():
            key = f"diffusion_model.blocks.{block}.{name}"
            sd[f"{key}.lora_down.weight"] = torch.randn(RANK, inp, generator=gen) / inp**0.5
            sd[f"{key}.lora_up.weight"] = torch.randn(out, RANK, generator=gen) * gain
            sd[f"{key}.alpha"] = torch.tensor(ALPHA)
    return sd


def canonical(data: bytes) -> bytes:
    """safetensors writes its metadata in random order: the same bytes with the metadata keys sorted (same length)."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    meta = header.pop("__metadata__", {})
    text = json.dumps({"__metadata__": dict(sorted(meta.items())), **header}, separators=(",", ":")).encode()
    return data[:8] + text.ljust(size) + data[8 + size :]


def main(out: str = OUT) -> list[str]:
    paths = []
    for name, seed, gain, noise in ((HIGH, 2201, 0.5, "high"), (LOW, 2202, 0.3, "low")):
        metadata = {"modelspec.architecture": "wan2.2-t2v-a14b/lora",
                    "modelspec.title": f"LoRA Deck demo: Wan 2.2 pair ({noise} noise)"}
        data = canonical(save(pair_file(seed, gain), metadata=metadata))
        paths.append(write_atomic(os.path.join(out, name), data))
    return paths


if __name__ == "__main__":
    print("\n".join(main()))  # noqa: T201
