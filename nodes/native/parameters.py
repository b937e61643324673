"""The A1111 ``parameters`` text of an image a native graph made (Load Checkpoint -> LoRA Loader (LoRA Deck) ->
KSampler -> VAE Decode -> Save Image (LoRA Deck)), read from the queued prompt (graph.py) and from the stacks the
LoRA Loaders applied (state.Applied, by each loader's signature)::

    a lighthouse <lora:style:0.8>
    Negative prompt: blurry
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: sd15, Lora hashes: "style: ...", ...

The LoRAs are written as A1111 writes them: a ``<lora:name:weight>`` tag in the prompt (``te=``/``unet=`` when the
text encoders' strength differs) and their A1111 hashes in ``Lora hashes``, which is what A1111 and Forge read to
find the files again when the text is pasted. Samplers and schedulers get A1111's names where it has them.
"""

from __future__ import annotations

import json
import os

from ...core.generation.infotext import alias, describe, lora_hash, quote
from ..common import node_id
from . import graph

LOADER = node_id("LoRALoader")
SAMPLERS = {"euler": "Euler", "euler_ancestral": "Euler a", "heun": "Heun", "dpm_2": "DPM2",
            "dpm_2_ancestral": "DPM2 a", "lms": "LMS", "dpm_fast": "DPM fast", "dpm_adaptive": "DPM adaptive",
            "dpmpp_2s_ancestral": "DPM++ 2S a", "dpmpp_sde": "DPM++ SDE", "dpmpp_2m": "DPM++ 2M",
            "dpmpp_2m_sde": "DPM++ 2M SDE", "dpmpp_3m_sde": "DPM++ 3M SDE", "ddim": "DDIM", "uni_pc": "UniPC",
            "lcm": "LCM", "restart": "Restart", "ddpm": "DDPM", "ipndm": "iPNDM", "deis": "DEIS"}
SCHEDULES = {"karras": "Karras", "exponential": "Exponential", "sgm_uniform": "SGM Uniform", "simple": "Simple",
             "ddim_uniform": "DDIM", "beta": "Beta", "kl_optimal": "KL Optimal", "normal": ""}


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _tag(spec, family) -> str:
    model = spec.weight_for(family.denoiser, family)
    clip = spec.weight_for(family.text_encoders[0], family) if family.text_encoders else model
    weights = f"{model:g}" if model == clip else f"te={clip:g}:unet={model:g}"
    return f"<lora:{alias(spec.name)}:{weights}>"


def text(prompt: dict, save_id, size: tuple[int, int], applied, hashes=None) -> str | None:
    """The parameters text for Save Image ``save_id``'s images, or None when no sampler made them."""
    sampler = graph.sampler(prompt, save_id)
    if sampler is None:
        return None
    model_chain = graph.along_model(prompt, sampler)
    loaders = [n for n in reversed(model_chain) if graph.class_type(prompt, n) == LOADER]  # applied first, first
    used = []
    for loader in loaders:
        found = applied.find(graph.signature(prompt, loader))
        if found is not None:
            stack, family = found
            used.extend((spec, family) for spec in stack.adapters if spec.enabled)
    positive = graph.text_behind(prompt, sampler, "positive")
    tags = " ".join(_tag(spec, family) for spec, family in used)
    lines = [f"{positive} {tags}".strip() if tags else positive]
    negative = graph.text_behind(prompt, sampler, "negative")
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(f"{k}: {v}" for k, v in _fields(prompt, sampler, model_chain, size, used, hashes)))
    return "\n".join(lines)


def _fields(prompt, sampler, model_chain, size, used, hashes) -> list[tuple[str, str]]:
    value = lambda key: graph.literal(prompt, sampler, key)  # noqa: E731
    fields = []
    if value("steps") is not None:
        fields.append(("Steps", _number(value("steps"))))
    name = value("sampler_name")
    if isinstance(name, str):
        fields.append(("Sampler", quote(SAMPLERS.get(name, name))))
    schedule = value("scheduler")
    if isinstance(schedule, str) and SCHEDULES.get(schedule, schedule):
        fields.append(("Schedule type", quote(SCHEDULES.get(schedule, schedule))))
    if value("cfg") is not None:
        fields.append(("CFG scale", _number(value("cfg"))))
    seed = next((value(k) for k in graph.SEED_INPUTS if value(k) is not None), None)
    if seed is not None:
        fields.append(("Seed", _number(seed)))
    fields.append(("Size", f"{size[0]}x{size[1]}"))
    checkpoint = graph.checkpoint_name(prompt, model_chain)
    if checkpoint:
        fields.append(("Model", quote(os.path.splitext(os.path.basename(checkpoint.replace("\\", "/")))[0])))
    denoise = value("denoise")
    if isinstance(denoise, (int, float)) and denoise < 1:
        fields.append(("Denoising strength", _number(float(denoise))))
    if used:
        found = ", ".join(f"{alias(spec.name)}: {lora_hash(spec, hashes)}" for spec, _ in used)
        weights = ", ".join(f"{alias(spec.name)}: {describe(spec)}" for spec, _ in used)
        fields += [("Lora hashes", json.dumps(found)), ("LoRA Deck", json.dumps(weights))]
    return fields
