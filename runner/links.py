"""What a link is in an API-format prompt (one test for the whole runner; no imports, so anything may use it)."""

from __future__ import annotations


def is_link(value) -> bool:
    """An input that comes from another node: ``["node id", output slot]``, as ComfyUI's execution tests it."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))
