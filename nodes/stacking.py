"""Adding several LoRAs to a stack at once: what Stack LoRAs and LoRA List share."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..core.errors import LoraDeckError, SpecError
from . import host, records
from .common import has_preview

Entry = tuple[str, str, float, float, tuple[str, ...]]  # (where, lora name, model, clip, recorded hashes)


def incoming(lora_stack) -> list[Entry]:
    """A LORA_STACK from another pack: [(lora_name, strength_model, strength_clip), ...]."""
    items = []
    for i, item in enumerate(lora_stack or [], start=1):
        if not isinstance(item, (list, tuple)) or len(item) < 3:
            raise SpecError(f"lora_stack item {i}: expected (lora_name, strength_model, strength_clip), got {item!r}")
        items.append((f"lora_stack item {i}", str(item[0]), float(item[1]), float(item[2]), ()))
    return items


def add_all(pipeline, entries: Iterable[Entry], hashes_for: Callable[[str], tuple[str, ...]] = lambda name: ()):
    """(new handle, ui dict, trigger words) after adding every entry in order. A failure names its entry
    (``slot 2: ...``) once; nothing is applied before Generate, so a failed node changes nothing."""
    stack, loaded = pipeline.stack, []
    for where, name, model, clip, hashes in entries:
        try:
            found = host.locate_lora(name, hashes or hashes_for(name))
            adapter, report = pipeline.owner.describe(found.path, None, model, clip)
        except LoraDeckError as exc:
            raise LoraDeckError(f"{where}: {exc}") from exc
        stack = stack.add(adapter)
        loaded.append((name, found, stack.adapters[-1], report))
    ui = records.loader_ui(loaded, has_preview, host.in_comfyui_lists)
    return pipeline.with_stack(stack), ui, records.trigger_words(r for *_, r in loaded)
