"""What a sweep has done, on disk: images by cell, an append-only journal, the manifest.

``cells.jsonl`` gets one line per finished cell, written (and flushed to disk) after the cell's image, so a
crash or Ctrl-C at any moment leaves every recorded cell complete; a second run reads it and skips those
cells by their content key. A half-written last line (the power went out) is ignored. ``manifest.json``
is the whole sweep (every cell -> parameters, file hashes, A1111 parameters text, image or failure), rewritten
atomically at the end of each run, also an interrupted one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os

from ..core.files.atomic import write_atomic

JOURNAL, MANIFEST, HASHES, IMAGES = "cells.jsonl", "manifest.json", "hashes.json", "images"
FINAL = ("ok", "failed")  # "failed": the configuration's own problem (a bad LoRA file): the same next time


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Journal:
    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder)
        self.path = os.path.join(self.folder, JOURNAL)
        self.records: dict[str, dict] = {}
        if os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a crash
                    if isinstance(record, dict) and isinstance(record.get("key"), str):
                        self.records[record["key"]] = record

    def image_path(self, record: dict) -> str:
        return os.path.join(self.folder, record.get("image") or "")

    def finished(self, key: str, retry_failed: bool = False) -> bool:
        """Whether the cell with this content key needs no rendering: done with its image still there, or
        failed for a reason of its own (unless ``retry_failed``)."""
        record = self.records.get(key)
        if record is None:
            return False
        if record.get("status") == "ok":
            return bool(record.get("image")) and os.path.isfile(self.image_path(record))
        return record.get("status") == "failed" and not retry_failed

    def write_image(self, name: str, png: bytes) -> str:
        relative = f"{IMAGES}/{name}.png"
        write_atomic(os.path.join(self.folder, relative), png)
        return relative

    def add(self, record: dict) -> None:
        os.makedirs(self.folder, exist_ok=True)
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records[record["key"]] = record


def read_json(path: str, default):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return default


def write_json(path: str, value) -> None:
    write_atomic(path, (json.dumps(value, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = ["FINAL", "HASHES", "IMAGES", "JOURNAL", "MANIFEST", "Journal", "now", "read_json", "sha256_bytes",
           "write_json"]
