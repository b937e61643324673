"""A1111-style ``parameters`` text for saved images, so civitai and A1111 readers credit the LoRAs.

One implementation for every saver (the headless SaveImage, LoRA Deck's Save Image)::

    a lighthouse <lora:style:0.8>
    Negative prompt: blurry
    Steps: 20, Sampler: DDIM, Seed: 42, CFG scale: 7, Size: 128x128, Model: tiny-sd (built-in),
    Lora hashes: "style: 0d1f2a3b4c5e", LoRA Deck: "style: model=0.8 clip=0.8"

(the last line is one line). ``Lora hashes`` holds what A1111 and Forge write there and look up when the text is
pasted (files/hashing.py: 12 hex digits of the hash of the bytes after the header, or of ``sshs_model_hash``);
an in-memory adapter with no file gives civitai's AutoV2 instead. Values holding ``,``, ``:`` or a newline are
JSON-quoted, as A1111 writes them. An IMAGE tensor carries no metadata, so whoever makes images records their
text in the runtime's ``ImageInfo`` table, keyed by the tensor object itself; a saver receiving that same tensor
finds it there.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict

from ..files.hashing import a1111_hash, autov2, shorthash
from ..models.schedulers import DEFAULT


def quote(text: str) -> str:
    """A1111's rule: values holding ``,``, ``:`` or a newline are written as a JSON string."""
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def alias(name: str) -> str:
    """An adapter name as it may appear inside ``Lora hashes`` (A1111 strips ``:`` and ``,``)."""
    return name.replace(":", "").replace(",", "").strip() or "lora"


def describe(spec) -> str:
    """One adapter's strengths as written in the ``LoRA Deck`` field: 'model=0.8 clip=0.5', a schedule in
    brackets ('model=[1@0-0.5, 0.2@0.5-1]'), 'fused=1' when fused."""
    schedules = dict(spec.schedules)
    parts = [f"{k}=[{schedules[k].text()}]" if k in schedules else f"{k}={v:g}" for k, v in spec.weights]
    return " ".join(parts) + (f" fused={spec.fuse_scale:g}" if spec.fused else "")


def lora_hash(spec, hashes=None) -> str:
    """The hash A1111 / Forge know ``spec``'s file by (12 hex digits; ``hashes``: a files.hashing.HashIndex, which
    keeps it per file), else civitai's AutoV2 (an in-memory adapter, an unreadable file)."""
    memory = getattr(spec, "memory", None)
    found = getattr(memory, "tensors_sha256", "") if memory is not None else ""
    if found:
        found = a1111_hash(memory.metadata, found)
    elif memory is None and hashes is not None:
        found = hashes.a1111(spec.path) or ""
    return shorthash(found) if found else autov2(spec.sha256)


def _weights(stack) -> str:
    return ", ".join(f"{alias(a.name)}: {describe(a)}" for a in stack.adapters if a.enabled)


def lora_fields(stack, hashes=None, cells=None) -> list[tuple[str, str]]:
    """``Lora hashes`` (A1111's hash per enabled adapter, ``lora_hash``; a pair's second file its own entry) and
    LoRA Deck's own adapter list with weights. ``cells`` (``(label, stack)`` pairs, a grid image's) makes the LoRA
    Deck field each cell's own stack, ``;``-separated: 'cell 1 (style: 0 / soft): style: model=0.5 clip=0.5; cell 2
    ...'."""
    used = [a for a in stack.adapters if a.enabled]
    if not used:
        return []
    found = ", ".join([f"{alias(a.name)}: {lora_hash(a, hashes)}" for a in used]
                      + [f"{alias(a.name)}_{p.component}: {lora_hash(p, hashes)}" for a in used for p in a.part_files])
    weights = _weights(stack) if cells is None else "; ".join(
        f"{label}: {_weights(cell) or 'no LoRA'}" for label, cell in cells)
    return [("Lora hashes", json.dumps(found)), ("LoRA Deck", json.dumps(weights))]


def sampler_name(owner, scheduler: str) -> str:
    """The scheduler's usual name: the one chosen, or for the model default the table entry that matches the
    pipeline's own scheduler (most settings matched wins), else its class name ('' when there is none)."""
    if scheduler != DEFAULT:
        return scheduler
    current = getattr(getattr(owner, "pipe", None), "scheduler", None)
    if current is None:
        return ""
    config = dict(getattr(current, "config", {}) or {})
    best, best_count = type(current).__name__, -1
    for name, entry in owner.family.schedulers.items():
        fixed = [(k, v) for k, v in entry.overrides if type(v) in (bool, int, float, str)]  # not seeds, not FromConfig
        matches = entry.cls == type(current).__name__ and all(config.get(k) == v for k, v in fixed)
        if matches and len(fixed) > best_count:
            best, best_count = name, len(fixed)
    return best


def model_name(owner) -> str:
    return owner.label.rsplit(" [", 1)[0]


def parameters(prompt: str, negative_prompt: str, params, stack, owner, size: tuple[int, int],
               extra: tuple[tuple[str, str], ...] = (), cells=None) -> str:
    """The parameters text of one image: ``prompt`` as written (tags included, as A1111 keeps them), the
    settings of ``params`` (GenerateParams), ``size`` (width, height) of the image, the LoRAs of ``stack``
    (``cells``: a grid's cells, see ``lora_fields``)."""
    sampler = sampler_name(owner, params.scheduler)
    fields = [("Steps", str(params.steps)), *([("Sampler", quote(sampler))] if sampler else []),
              ("Seed", str(params.seed)), ("CFG scale", f"{params.cfg:g}"), ("Size", f"{size[0]}x{size[1]}"),
              ("Model", quote(model_name(owner)))]
    if params.denoise < 1:
        fields.append(("Denoising strength", f"{params.denoise:g}"))
    fields += [*lora_fields(stack, getattr(getattr(owner, "runtime", None), "hashes", None), cells), *extra]
    lines = [str(prompt)]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    lines.append(", ".join(f"{key}: {value}" for key, value in fields))
    return "\n".join(lines)


class ImageInfo:
    """Parameters texts of the IMAGE tensors made in this runtime, found again by the tensor object (never
    by value): one text per image of the batch, or one for all. Holds no tensor alive; keeps ``limit``."""

    def __init__(self, limit: int = 64):
        self.limit = limit
        self._items: OrderedDict[int, tuple[weakref.ref, tuple[str, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, images, texts) -> None:
        texts = (texts,) if isinstance(texts, str) else tuple(texts)
        with self._lock:
            self._items[id(images)] = (weakref.ref(images), texts)
            self._items.move_to_end(id(images))
            for key in [k for k, (ref, _) in self._items.items() if ref() is None]:
                del self._items[key]
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def lookup(self, images) -> tuple[str, ...] | None:
        with self._lock:
            entry = self._items.get(id(images))
        if entry is None or entry[0]() is not images:
            return None
        return entry[1]

    def for_image(self, images, index: int) -> str | None:
        """The text of image ``index`` of the batch ``images``, or None when nothing here made them."""
        texts = self.lookup(images)
        if not texts:
            return None
        return texts[index] if len(texts) == len(images) else texts[0]
