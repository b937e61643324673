"""The one JSON parser for text that comes from files: bounded in size, nesting, numbers and items.

A safetensors header, its metadata fields (``ss_tag_frequency``, ``ss_network_args``, trigger words,
``lora_adapter_metadata``) and a PEFT ``adapter_config.json`` are written by strangers. ``json.loads`` alone
turns a deeply nested value into a RecursionError, ``Infinity`` into a float that overflows later, and a
million-digit number into seconds of work. ``loads`` checks the text first (size, then nesting depth and item
count with a vectorised scan, so the parser never recurses deeper than ``max_depth``), then parses with hooks
that refuse ``NaN``/``Infinity`` and numbers beyond float range (Python itself refuses integers over 4300
digits). Every failure is an ``UntrustedJsonError``.
"""

from __future__ import annotations

import json
import math

import numpy as np

MAX_CHARS = 16 * 1024 * 1024
MAX_DEPTH = 32
MAX_ITEMS = 1_000_000  # object members + array elements, in all
CHUNK = 1 << 18
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)
_QUOTE, _BACKSLASH, _COMMA = ord('"'), ord("\\"), ord(",")


class UntrustedJsonError(ValueError):
    """Text from a file is not JSON LoRA Deck will read; the message says why in plain words."""


def shape_of(data: bytes, chunk: int = CHUNK) -> tuple[int, int]:
    """(deepest bracket nesting, upper bound of items) of JSON ``data``, without parsing (no recursion).

    A quote is a string delimiter when an even number of backslashes precede it; outside strings each
    ``[``/``{`` opens a level and each ``]``/``}`` closes one; members and elements are at most the commas
    plus the containers. For text that is not valid JSON the figures still bound what a parser meets before
    it stops at the first error. Vectorised in chunks, carrying the state across them, so a 16 MB header
    costs a few tens of milliseconds and a few MB."""
    arr = np.frombuffer(data, dtype=np.uint8)
    depth = deepest = items = 0
    quoted, slashes = False, 0  # inside a string?; backslashes right before the chunk
    for start in range(0, arr.size, chunk):
        part = arr[start : start + chunk]
        index = np.arange(part.size)
        slash = part == _BACKSLASH
        last_plain = np.maximum.accumulate(np.where(slash, -1 - slashes, index))
        run_before = np.concatenate(([slashes], index[:-1] - last_plain[:-1]))
        delimiter = (part == _QUOTE) & (run_before % 2 == 0)
        toggles = np.cumsum(delimiter)
        outside = ~(((toggles + quoted) % 2 == 1) | delimiter)
        opens = np.isin(part, _OPEN) & outside
        levels = depth + np.cumsum(opens.astype(np.int32) - (np.isin(part, _CLOSE) & outside))
        deepest = max(deepest, int(levels.max()))
        depth = int(levels[-1])
        items += int(np.count_nonzero((part == _COMMA) & outside)) + int(np.count_nonzero(opens))
        quoted = bool((int(toggles[-1]) + quoted) % 2)
        slashes = int(part.size - 1 - last_plain[-1]) if slash[-1] else 0
    return deepest, items


def _refuse_constant(name: str):
    raise UntrustedJsonError(f"it contains {name}, which JSON does not allow")


def _float(text: str) -> float:
    # Integers keep the C parser's fast path: Python refuses those over 4300 digits itself (a ValueError).
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedJsonError(f"it contains the number {text[:20]}, beyond float range")
    return value


def loads(text: str | bytes, max_chars: int = MAX_CHARS, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS):
    """The value of JSON ``text``, or UntrustedJsonError (too long, too deep, NaN/Infinity, huge numbers,
    too many items, or not JSON at all)."""
    if isinstance(text, str):
        data = text.encode("utf-8", "surrogatepass")
    elif isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
    else:
        raise UntrustedJsonError(f"it is {type(text).__name__}, not text")
    if len(data) > max_chars:
        raise UntrustedJsonError(f"it is {len(data)} bytes long (limit {max_chars})")
    opens = data.count(b"[") + data.count(b"{")
    depth, items = shape_of(data) if opens > max_depth or opens + data.count(b",") > max_items else (0, 0)
    if depth > max_depth:
        raise UntrustedJsonError(f"it nests {depth} levels deep (limit {max_depth})")
    if items > max_items:
        raise UntrustedJsonError(f"it holds up to {items} items (limit {max_items})")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant,
                          parse_float=_float)
    except UntrustedJsonError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise UntrustedJsonError(f"it is not valid JSON ({str(exc)[:120]})") from None
