"""LoRA List: as many LoRA rows as the user wants, each with an on/off switch and its file's hash.

Its one widget, ``loras``, holds the rows as JSON text (web/lora_list.js draws them as rows you add,
remove and switch; without that script it is still a saved, queued, headless-runnable value):

    [{"enabled": true, "lora_name": "style.safetensors", "strength_model": 0.8, "strength_clip": 0.5,
      "sha256": "<64 hex, recorded after a run>"}, ...]

A row's recorded hash finds its file on another machine under another name, with the same rules as
Load LoRA (core.lora_lookup.locate), at queue time (VALIDATE_INPUTS) and when the node runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..core.errors import LoraFileError, SpecError
from ..core.files.lookup import normalise_hash
from ..core.stacks.specs import check_strength
from . import host, stacking
from .common import CATEGORY, LORA_STACK, PIPELINE, TRIGGER_WORDS_TIP, file_stamp, node_id, pipeline_input

ROWS_TYPE = "LORADECK_LORA_LIST"  # a widget type of our own (web/lora_list.js); the value is JSON text
MAX_ROWS = 200
MAX_TEXT = 256 * 1024


@dataclass(frozen=True)
class Row:
    enabled: bool
    lora_name: str
    strength_model: float = 1.0
    strength_clip: float = 1.0
    sha256: str = ""

    def to_dict(self) -> dict:
        return {"enabled": self.enabled, "lora_name": self.lora_name, "strength_model": self.strength_model,
                "strength_clip": self.strength_clip, "sha256": self.sha256}


def _row(number: int, item) -> Row:
    where = f"row {number}"
    if not isinstance(item, dict):
        raise SpecError(f"{where}: expected an object with lora_name and strengths, got {item!r:.80}")
    name = item.get("lora_name")
    if not isinstance(name, str):
        raise SpecError(f"{where}: lora_name must be a file name, got {name!r:.80}")
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SpecError(f"{where}: enabled must be true or false, got {enabled!r:.40}")
    if enabled and not name.strip():  # a row just added with "+ Add LoRA": the file is picked in the row
        raise SpecError(f"{where}: no LoRA file chosen; pick one in the row, switch the row off or remove it")
    model = check_strength(item.get("strength_model", 1.0), f"{where}, strength_model")
    clip = check_strength(item.get("strength_clip", model), f"{where}, strength_clip")
    return Row(enabled, name, model, clip, normalise_hash(item.get("sha256")) or "")


def parse_rows(text) -> list[Row]:
    """The widget's JSON text -> rows; SpecError naming the row for anything malformed."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise SpecError(f"loras must be JSON text of at most {MAX_TEXT} characters")
    try:
        items = json.loads(text or "[]")
    except ValueError as exc:
        raise SpecError(f"loras is not valid JSON ({exc})") from None
    if not isinstance(items, list) or len(items) > MAX_ROWS:
        raise SpecError(f"loras must be a list of at most {MAX_ROWS} rows")
    return [_row(i, item) for i, item in enumerate(items, start=1)]


def rows_text(rows) -> str:
    """Rows (Row or dicts) -> the widget's JSON text."""
    return json.dumps([r.to_dict() if isinstance(r, Row) else r for r in rows])


def _hashes(row: Row) -> tuple[str, ...]:
    return (row.sha256,) if row.sha256 else ()


def entries(rows: list[Row]) -> list[stacking.Entry]:
    return [(f"row {i}", r.lora_name, r.strength_model, r.strength_clip, _hashes(r))
            for i, r in enumerate(rows, start=1) if r.enabled]


def check_rows(loras: str):
    """VALIDATE_INPUTS of a rows input: one message for every row that cannot be used (ComfyUI shows it once:
    the method takes one argument), else True."""
    try:
        rows = parse_rows(loras)
    except SpecError as exc:
        return str(exc)
    problems = []
    for where, name, _model, _clip, hashes in entries(rows):
        try:
            host.locate_lora(name, hashes)
        except LoraFileError as exc:
            problems.append(f"{where}: {exc}")
    return "\n".join(problems) or True


def rows_stamp(loras: str) -> str:
    """IS_CHANGED of a rows input: the rows' files as they are now (a file replaced under its name runs again)."""
    stamps = []
    try:
        for _where, name, _model, _clip, hashes in entries(parse_rows(loras)):
            stamps.append(file_stamp(host.locate_lora(name, hashes).path))
    except Exception:  # reported properly when the node runs
        stamps.append("unresolved")
    return ",".join(stamps)


class LoRAList:
    NODE_ID = node_id("LoRAList")
    DISPLAY_NAME = "LoRA List"
    DESCRIPTION = ("Adds any number of LoRAs, one row each (add, remove, switch on and off), after any LORA_STACK "
                   "from other packs. Each row keeps its file's hash, so a shared workflow finds the file under "
                   "another name or folder.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE, LORA_STACK, "STRING")
    RETURN_NAMES = ("pipeline", "lora_stack", "trigger_words")
    OUTPUT_TOOLTIPS = ("The pipeline with these LoRAs added.",
                       "(lora_name, strength_model, strength_clip) for every LoRA added here, incoming ones first.",
                       TRIGGER_WORDS_TIP)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pipeline": pipeline_input(),
            "loras": (ROWS_TYPE, {"default": "[]", "choices": host.lora_names(), "tooltip":
                                  "The LoRA rows: file, strengths, on/off. Rows that are off are kept in the workflow "
                                  "but not loaded."}),
        }, "optional": {"lora_stack": (LORA_STACK, {
            "tooltip": "A LORA_STACK from another node (Efficiency, Comfyroll, ...); applied before the rows."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, loras):
        return check_rows(loras)

    @classmethod
    def IS_CHANGED(cls, loras, **_):
        return rows_stamp(loras)

    def add(self, pipeline, loras: str, lora_stack=None):
        chosen = stacking.incoming(lora_stack) + entries(parse_rows(loras))
        handle, ui, words = stacking.add_all(pipeline, chosen)
        return {"ui": ui, "result": (handle, [(name, m, c) for _, name, m, c, _ in chosen], words)}
