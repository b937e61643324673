"""Strength schedules over the denoising steps: piecewise values and linear ramps.

A schedule is written where a strength goes (Set Adapter Weights, ``Deck.set_weights``), for the denoiser::

    style: model=1.0@0-0.5, 0.2@0.5-1      1.0 for the first half of the steps, 0.2 for the rest
    style: ramp(1.0, 0.2)                  from 1.0 at the first step to 0.2 at the last, linearly
    style: model=ramp(1, 0)@0-0.6, 0@0.6-1 fade out over the first 60 %, then off
    style: 0.8@0-0.3                       0.8 for the first 30 %, 0 (off) after

Positions are fractions of the steps that run: with n steps, step i sits at i / (n - 1), so the first
step is at 0 and the last at 1 (5 steps: 0, 0.25, 0.5, 0.75, 1; a single step sits at 0). A segment
``a-b`` holds the positions a <= t < b, and the last one (ending at 1) holds 1 too; positions that no
segment holds get strength 0. Segments must not overlap. A ramp is linear over its own segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SpecError
from .strengths import check_strength

_RAMP = re.compile(r"^ramp\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)$", re.IGNORECASE)
_RANGE = re.compile(r"^([0-9.]+)\s*-\s*([0-9.]+)$")


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    first: float  # the strength at ``start``
    last: float  # the strength at ``end`` (== first for a constant)

    def holds(self, t: float) -> bool:
        return self.start <= t < self.end or t == self.end == 1.0

    def at(self, t: float) -> float:
        if self.first == self.last:
            return self.first
        return self.first + (self.last - self.first) * (t - self.start) / (self.end - self.start)

    def text(self) -> str:
        value = f"{self.first:g}" if self.first == self.last else f"ramp({self.first:g}, {self.last:g})"
        return value if (self.start, self.end) == (0.0, 1.0) else f"{value}@{self.start:g}-{self.end:g}"


@dataclass(frozen=True)
class Schedule:
    """A strength as a function of the position t in 0..1 over the steps (see the module doc)."""

    segments: tuple[Segment, ...]

    def __post_init__(self):
        segments = tuple(sorted(self.segments, key=lambda s: s.start))
        if not segments:
            raise SpecError("a strength schedule needs at least one segment")
        for seg in segments:
            if not 0.0 <= seg.start < seg.end <= 1.0:
                raise SpecError(f"schedule segment {seg.start:g}-{seg.end:g}: positions go from 0 (first step) "
                                "to 1 (last step), and a segment must end after it starts")
        for before, after in zip(segments, segments[1:], strict=False):
            if after.start < before.end:
                raise SpecError(f"schedule segments {before.text()} and {after.text()} overlap")
        object.__setattr__(self, "segments", segments)

    def at(self, t: float) -> float:
        for seg in self.segments:
            if seg.holds(t):
                return seg.at(t)
        return 0.0

    def text(self) -> str:
        """The canonical written form: ``1@0-0.5, 0.2@0.5-1``, ``ramp(1, 0.2)``."""
        return ", ".join(seg.text() for seg in self.segments)

    def values(self, steps: int) -> tuple[float, ...]:
        """The strength at each of ``steps`` steps."""
        return tuple(self.at(position(i, steps)) for i in range(steps))


def position(step: int, steps: int) -> float:
    """Where step ``step`` (0-based) of ``steps`` sits in 0..1: the first at 0, the last at 1."""
    return step / (steps - 1) if steps > 1 else 0.0


def is_schedule(text: str) -> bool:
    """True when a strength value is written as a schedule (an ``@`` range or a ramp)."""
    text = text.strip().lower()
    return "@" in text or text.startswith("ramp(")


def _pieces(text: str) -> list[str]:
    """Split at commas outside parentheses: 'ramp(1, 0)@0-0.5, 0@0.5-1' -> ['ramp(1, 0)@0-0.5', '0@0.5-1']."""
    pieces, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in [*pieces, current] if p.strip()]


def _segment(piece: str, alone: bool, where: str) -> Segment:
    value, at, span = (part.strip() for part in piece.partition("@"))
    if at:
        match = _RANGE.match(span)
        if not match:
            raise SpecError(f"{where}: {piece!r}: write the steps as a range of positions, e.g. 1.0@0-0.5")
        start, end = (float(g) for g in match.groups())
    elif alone:
        start, end = 0.0, 1.0
    else:
        raise SpecError(f"{where}: {piece!r} needs its range of positions when there are several pieces, "
                        "e.g. 1.0@0-0.5, 0.2@0.5-1")
    ramp = _RAMP.match(value)
    if ramp:
        first, last = (check_strength(v, f"{where}, ramp") for v in ramp.groups())
    else:
        first = last = check_strength(value, where)
    return Segment(start, end, first, last)


def parse(text: str, where: str = "schedule") -> Schedule:
    """'1.0@0-0.5, 0.2@0.5-1' / 'ramp(1, 0.2)' -> Schedule; SpecError naming ``where`` otherwise."""
    pieces = _pieces(text)
    if not pieces:
        raise SpecError(f"{where}: empty schedule; e.g. ramp(1.0, 0.2) or 1.0@0-0.5, 0.2@0.5-1")
    try:
        return Schedule(tuple(_segment(p, len(pieces) == 1, where) for p in pieces))
    except SpecError as exc:
        message = str(exc)
        raise SpecError(message if message.startswith(where) else f"{where}: {message}") from None


def ramp(first: float, last: float, start: float = 0.0, end: float = 1.0) -> Schedule:
    """A linear ramp from ``first`` to ``last`` over positions ``start``..``end`` (Python API)."""
    return Schedule((Segment(float(start), float(end), check_strength(first, "ramp"), check_strength(last, "ramp")),))
