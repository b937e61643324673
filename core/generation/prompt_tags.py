"""A1111-style LoRA tags in a prompt: ``<lora:name:weight>`` and ``<lora:name:model:clip>``.

    a lighthouse <lora:style:0.8>, sunset            style at 0.8 on the denoiser and the text encoders
    a lighthouse <lora:sub/detail:1:0.5>             model 1, clip 0.5 (ComfyUI's order: model, then clip)
    a lighthouse <lora:style:te=0.5:unet=1>          by name (A1111's own positional order is te, unet)
    a lighthouse <lora:0d1f2a3b4c>                   by hash (10-hex AutoV2, A1111's 12-hex hash or the full
                                                     SHA-256), weight 1

The tags are taken out of the text the encoders see ("a lighthouse, sunset"), and their files are added on
top of the incoming stack for that generation only. Names resolve like any LoRA name (lora_lookup.locate:
as given, then with either separator, then by recorded hash, then a unique same-named file in another
subfolder); ``.safetensors`` may be left out, as A1111 prompts do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import LoraFileError, SpecError
from ..files.hashing import AUTOV2_HEX, AUTOV3_HEX, SHA256_HEX
from ..files.lookup import locate as lookup
from ..files.reading import SAFE_SUFFIXES
from ..models.family import CLIP_GROUP, MODEL_GROUP
from ..stacks.specs import StackSpec
from ..stacks.strengths import check_strength

TAG = re.compile(r"<lora:([^<>]*)>", re.IGNORECASE)
KEYS = {"model": MODEL_GROUP, "unet": MODEL_GROUP, "clip": CLIP_GROUP, "te": CLIP_GROUP}
HEX = set("0123456789abcdefABCDEF")

Locate = Callable[[str, Iterable[str]], object]  # (name, hashes) -> Located (lora_lookup / host.locate_lora)


@dataclass(frozen=True)
class Tag:
    text: str  # as written, e.g. "<lora:style:0.8>"
    name: str
    model: float = 1.0
    clip: float = 1.0

    @property
    def file_name(self) -> str:
        """The name to look up: ``.safetensors`` added when the tag leaves the extension out."""
        return self.name if self.name.lower().endswith(SAFE_SUFFIXES) else f"{self.name}.safetensors"

    @property
    def hashes(self) -> tuple[str, ...]:
        """The name itself when it is written as a hash (10-hex AutoV2, A1111's 12-hex hash or a full SHA-256)."""
        lengths = (AUTOV2_HEX, AUTOV3_HEX, SHA256_HEX)
        return (self.name,) if len(self.name) in lengths and set(self.name) <= HEX else ()


def _tag(text: str, body: str) -> Tag:
    name, *parts = (p.strip() for p in body.split(":"))
    if not name:
        raise SpecError(f"prompt tag {text}: the LoRA name is missing; write <lora:name:weight>")
    if len(parts) > 2:
        raise SpecError(f"prompt tag {text}: expected <lora:name:weight> or <lora:name:model:clip>")
    values = {MODEL_GROUP: None, CLIP_GROUP: None}
    for position, part in enumerate(parts):  # positional: model, then clip
        key, eq, raw = part.rpartition("=")
        if eq and key.strip().lower() not in KEYS:
            raise SpecError(f"prompt tag {text}: {key.strip()!r} is not one of {', '.join(KEYS)}")
        group = KEYS[key.strip().lower()] if eq else (MODEL_GROUP, CLIP_GROUP)[position]
        values[group] = check_strength(raw, f"prompt tag {text}, {group}")
    model = values[MODEL_GROUP] if values[MODEL_GROUP] is not None else values[CLIP_GROUP]
    model = 1.0 if model is None else model
    clip = values[CLIP_GROUP] if values[CLIP_GROUP] is not None else model
    return Tag(text, name, model, clip)


def clean(text: str) -> str:
    """The prompt without its tags, tidied: 'a cat <lora:x:1>, sunset' -> 'a cat, sunset'."""
    text = TAG.sub(" ", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" *, *(, *)+", ", ", text)  # ", ," left where a tag stood between commas
    text = re.sub(r" +([,.;:!?])", r"\1", text)
    return "\n".join(line.strip(" ,") for line in text.split("\n")).strip()


def parse(prompt: str) -> tuple[str, tuple[Tag, ...]]:
    """(the prompt the encoders see, the tags in order); SpecError for a malformed tag."""
    tags = tuple(_tag(m.group(0), m.group(1)) for m in TAG.finditer(prompt or ""))
    return (clean(prompt) if tags else prompt), tags


def locate_tag(tag: Tag, locate: Locate):
    """Where a tag's file is; LoraFileError naming the tag (with the closest names) when it is nowhere."""
    try:
        return locate(tag.file_name, tag.hashes)
    except LoraFileError as exc:
        raise LoraFileError(f"{tag.name} (prompt tag {tag.text})", exc.problem, exc.advice) from None


def check(prompt: str, locate: Locate) -> str | None:
    """None when every tag of ``prompt`` is well formed and its file is found, else the error in plain words
    (what Generate's VALIDATE_INPUTS shows at queue time)."""
    try:
        for tag in parse(prompt)[1]:
            locate_tag(tag, locate)
    except (SpecError, LoraFileError) as exc:
        return str(exc)
    return None


def add_tags(owner, stack: StackSpec, tags: Iterable[Tag], locate: Locate) -> StackSpec:
    """``stack`` with each tag's file added on top (checked against ``owner``'s pipeline, as Load LoRA does)."""
    for tag in tags:
        found = locate_tag(tag, locate)
        adapter, _ = owner.describe(found.path, None, tag.model, tag.clip)
        stack = stack.add(adapter)
    return stack


def default_locate(runtime) -> Locate:
    """LoRA names looked up in ``runtime``'s folders (the Python API; the nodes pass host.locate_lora)."""
    return lambda name, hashes=(): lookup(name, runtime.folders.roots("loras"), hashes, runtime.hashes)


def resolve(owner, stack: StackSpec, prompt: str, locate: Locate | None = None) -> tuple[StackSpec, str]:
    """(``stack`` + the prompt's tags, the prompt without them)."""
    text, tags = parse(prompt)
    if not tags:
        return stack, prompt
    return add_tags(owner, stack, tags, locate or default_locate(owner.runtime)), text
