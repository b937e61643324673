"""A civitai-style reader of A1111 ``parameters`` text, written independently of LoRA Deck's writer.

It follows what civitai's image-metadata reader does with an A1111 PNG: the prompt is every line before
``Negative prompt:``, the negative prompt runs up to the settings line (the last line, starting with
``Steps:``), the settings are ``Key: value`` pairs separated by commas with JSON-quoted values, and the
resources are the LoRAs of ``Lora hashes`` (``name: hash`` pairs) plus the model; ``<lora:name:w>`` tags in
the prompt give the LoRAs' weights.
"""

from __future__ import annotations

import json
import re

FIELD = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
PROMPT_LORA = re.compile(r"<lora:([^:>]+):([^>]+)>")
CAMEL = {"Steps": "steps", "Sampler": "sampler", "Seed": "seed", "CFG scale": "cfgScale", "Size": "Size",
         "Model": "Model", "Model hash": "Model hash", "Denoising strength": "denoise"}


def _value(raw: str) -> str:
    raw = raw.strip()
    return json.loads(raw) if raw.startswith('"') and raw.endswith('"') else raw


def _weight(params: str) -> float:
    """A tag's weight: its first number (A1111's te multiplier, which unet follows), else ``unet=`` (``te=``)."""
    named = dict(p.split("=", 1) for p in params.split(":") if "=" in p)
    positional = [p for p in params.split(":") if "=" not in p]
    return float(positional[0] if positional else named.get("unet", named.get("te", 1.0)))


def parse(text: str) -> dict:
    lines = text.strip().split("\n")
    settings = lines[-1] if lines[-1].startswith("Steps:") else ""
    body = lines[:-1] if settings else lines
    prompt, negative, in_negative = [], [], False
    for line in body:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    meta: dict = {"prompt": "\n".join(prompt), "negativePrompt": "\n".join(negative), "resources": []}
    details = {key.strip(): _value(value) for key, value in FIELD.findall(settings)}
    for key, value in details.items():
        meta[CAMEL.get(key, key)] = value
    for key in ("steps", "seed"):
        if key in meta:
            meta[key] = int(meta[key])
    if "cfgScale" in meta:
        meta["cfgScale"] = float(meta["cfgScale"])
    if "Size" in meta:
        meta["width"], meta["height"] = (int(v) for v in meta["Size"].split("x"))
    weights = {name: _weight(params) for name, params in PROMPT_LORA.findall(meta["prompt"])}
    if details.get("Lora hashes"):
        for pair in details["Lora hashes"].split(","):
            name, _, digest = pair.strip().partition(":")
            meta["resources"].append({"type": "lora", "name": name.strip(), "hash": digest.strip(),
                                      "weight": weights.get(name.strip(), 1.0)})
    if meta.get("Model"):
        meta["resources"].append({"type": "model", "name": meta["Model"], "hash": meta.get("Model hash")})
    return meta
