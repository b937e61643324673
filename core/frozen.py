"""``evolve``: a frozen dataclass with some fields changed, without running its ``__init__`` again.

``dataclasses.replace`` builds the copy through ``__init__`` (and ``__post_init__``): on a strength change, with
the CPU caches cold, that was a quarter of LoRA Deck's whole cost (bench/README.md). ``evolve`` copies the
instance's fields (not values cached beside them) and sets the changed ones; the caller must have checked those
as ``__post_init__`` would (every other field was checked when the original was made).
"""

from __future__ import annotations


def evolve(obj, **changes):
    """``dataclasses.replace(obj, **changes)`` for an instance whose changed fields are already valid."""
    fields = type(obj).__dataclass_fields__
    unknown = [name for name in changes if name not in fields]
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field(s) {unknown}")
    new = object.__new__(type(obj))
    state = new.__dict__
    state.update({k: v for k, v in obj.__dict__.items() if k in fields})  # fields only: no cached values
    state.update(changes)
    return new


