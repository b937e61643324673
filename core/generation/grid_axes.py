"""The LoRA Grid's axes: a small text per axis, a kind and a list of values of that kind.

    strength style: 0 | 0.5 | 1                       one adapter's strength (any Set Adapter Weights value:
    strength style: model=1, clip=0 | ramp(1, 0) | off   per component, a schedule, off, block weights)
    adapters: none | style | detail | style + detail  which of the named adapters are on (the others off;
                                                      adapters the axis never names stay as they are)
    stacks: soft = style: 0.5; detail: off | strong = style: 1.2   whole named stacks: weight lines
    stacks: <lora:other:0.8> | <lora:style:1>; detail: off        separated by ';', and LoRA tags that add
                                                                  a file for that value only

Values are separated by ``|`` or by new lines; ``#`` starts a comment; a name with spaces or colons is
quoted (``strength "my lora": 0 | 1``). An empty axis is one value that changes nothing.

A cell's Y value is applied after its X value, so where both set the same adapter the Y value wins and
that row's cells do not show the X values for it (``overrides`` says where, in words for the text output).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import LoraFileError, SpecError
from ..stacks import weights_text
from ..stacks.specs import StackSpec
from ..stacks.stack_ops import set_weights
from . import prompt_tags

MAX_VALUES = 16  # per axis
MAX_CELLS = 64
NONE_WORDS = {"none", "base", "off", "-"}
_LABEL = re.compile(r"^\s*([^:=<>;|\"]+?)\s*=(?!=)")


@dataclass(frozen=True)
class Axis:
    which: str  # "X" or "Y"
    kind: str  # "strength", "adapters", "stacks", or "" for no axis
    target: str  # the adapter a strength axis changes
    values: tuple[str, ...]  # as written

    @property
    def labels(self) -> tuple[str, ...]:
        if self.kind == "strength":
            return tuple(f"{self.target}: {v}" for v in self.values)
        if self.kind == "stacks":
            return tuple(_label_and_body(v)[0] for v in self.values)
        return self.values

    def title(self) -> str:
        if not self.kind:
            return f"{self.which}: none"
        what = f"strength of {self.target}" if self.kind == "strength" else self.kind
        return f"{self.which}: {what} ({' | '.join(self.values)})"


def _lines(text: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in (text or "").splitlines()]


def parse_axis(text: str, which: str = "X") -> Axis:
    """The axis written in ``text``; SpecError naming the axis and what to write instead."""
    lines = [line for line in _lines(text) if line]
    if not lines:
        return Axis(which, "", "", ("",))
    head, colon, first = lines[0].partition(":")
    if head.strip().startswith("strength") and head.strip().removeprefix("strength")[:1] in (" ", '"'):
        name, rest = weights_text.split_name(lines[0].strip().removeprefix("strength").strip(), f"{which} axis")
        kind, target, first = "strength", name, rest
    else:
        kind, target = head.strip().lower(), ""
        if not colon or kind not in ("adapters", "stacks"):
            raise SpecError(f"{which} axis: start with 'strength NAME:', 'adapters:' or 'stacks:', then the values "
                            f"separated by |, e.g. 'strength style: 0 | 0.5 | 1'; got {lines[0]!r}")
    values = tuple(v.strip() for line in [first, *lines[1:]] for v in line.split("|") if v.strip())
    if not values:
        raise SpecError(f"{which} axis ({kind}): no values; separate them with |, e.g. {kind}: a | b")
    if len(values) > MAX_VALUES:
        raise SpecError(f"{which} axis: {len(values)} values; at most {MAX_VALUES} per axis")
    return Axis(which, kind, target, values)


def _label_and_body(value: str) -> tuple[str, str]:
    match = _LABEL.match(value)
    return (match.group(1).strip(), value[match.end():].strip()) if match else (value, value)


def _members(value: str) -> set[str]:
    if value.strip().lower() in NONE_WORDS:
        return set()
    return {n.strip().strip('"') for n in re.split(r"[+,]", value) if n.strip()}


class Cells:
    """Each cell's stack: ``base`` changed by its X value, then by its Y value (row-major: Y rows of X)."""

    def __init__(self, owner, base: StackSpec, locate: prompt_tags.Locate | None = None):
        self.owner, self.base = owner, base
        self.locate = locate or prompt_tags.default_locate(owner.runtime)

    def build(self, x: Axis, y: Axis) -> list[tuple[int, int, StackSpec]]:
        if len(x.values) * len(y.values) > MAX_CELLS:
            raise SpecError(f"{len(x.values)} x {len(y.values)} cells; a grid holds at most {MAX_CELLS}")
        x_stacks = [self.edit(self.base, x, i) for i in range(len(x.values))]
        return [(row, column, self.edit(x_stacks[column], y, row))
                for row in range(len(y.values)) for column in range(len(x.values))]

    def overrides(self, x: Axis, y: Axis, cells: list[tuple[int, int, StackSpec]]) -> list[str]:
        """One warning per Y value that sets again an adapter the X values set (the Y value is applied last, so
        the X values are lost for it in that row), naming the adapters and saying when the row's cells are
        therefore all the same. Empty when the axes never set the same adapter."""
        if not (x.kind and y.kind):
            return []
        x_stacks = [self.edit(self.base, x, column) for column in range(len(x.values))]
        warnings = []
        for row in range(len(y.values)):
            alone = self.edit(self.base, y, row)  # what the Y value makes of the stack without any X value
            finals = [stack for r, _, stack in cells if r == row]
            lost = [what for name in dict.fromkeys(a.name for s in x_stacks for a in s.adapters)
                    if (what := _lost(name, self.base, x_stacks, alone, finals))]
            if not lost:
                continue
            same = len(x.values) > 1 and all(stack == finals[0] for stack in finals)
            names = ", ".join(lost)
            warnings.append(f"Y value {y.labels[row]!r} sets {names} again after the X value, so the X "
                            f"values do not change {names} in row {row + 1}"
                            + (f": its {len(finals)} cells are the same picture under different X labels" if same
                               else ""))
        return warnings

    def edit(self, stack: StackSpec, axis: Axis, index: int) -> StackSpec:
        if not axis.kind:
            return stack
        value = axis.values[index]
        try:
            return EDITS[axis.kind](self, stack, axis, value)
        except SpecError as exc:
            message = re.sub(r"^weights line \d+: ", "", str(exc))
            raise SpecError(f"{axis.which} axis, value {index + 1} ({value!r}): {message}") from None

    def _weights(self, stack: StackSpec, text: str) -> StackSpec:
        family = self.owner.family
        return weights_text.apply_text(stack, text, family, self.owner.block_rule)

    def strength(self, stack: StackSpec, axis: Axis, value: str) -> StackSpec:
        return self._weights(stack, f"{weights_text.quote_name(axis.target)}: {value}")

    def adapters(self, stack: StackSpec, axis: Axis, value: str) -> StackSpec:
        named = set().union(*(_members(v) for v in axis.values))
        missing = sorted(named - set(stack.names))
        if missing:
            raise SpecError(f"no adapter named {', '.join(map(repr, missing))}; this stack has: "
                            f"{', '.join(stack.names) or 'no adapters'}")
        on = _members(value)
        for name in sorted(named):
            stack = set_weights(stack, name, enabled=name in on)
        return stack

    def stacks(self, stack: StackSpec, axis: Axis, value: str) -> StackSpec:
        lines = []
        for piece in (p.strip() for p in _label_and_body(value)[1].split(";")):
            text, tags = prompt_tags.parse(piece)
            stack = prompt_tags.add_tags(self.owner, stack, tags, self.locate)
            if text.strip():
                lines.append(text)
        return self._weights(stack, "\n".join(lines))


def _adapter(stack: StackSpec, name: str):
    return next((a for a in stack.adapters if a.name == name), None)


def _aspects(spec) -> dict:
    """What an axis value can set on an adapter: each strength key (number and schedule), on/off, block
    weights, fusing."""
    schedules = dict(spec.schedules)
    found = {key: (value, schedules.get(key)) for key, value in spec.weights}
    found.update({"on/off": spec.enabled, "blocks": spec.blocks,
                  "fusing": (spec.fused, spec.fuse_scale, spec.fuse_components)})
    return found


def _lost(name: str, base: StackSpec, x_stacks: list[StackSpec], by_y: StackSpec, finals: list[StackSpec]) -> str:
    """``name`` (or ``name (model, clip)`` when only some of what the X values set) when the Y value, applied after
    an X value, decided what that X value set on the adapter: the cell has the Y value's setting, or the Y value
    switched off what the X value set. '' when the X values show in this row."""
    before, y_set = _adapter(base, name), _adapter(by_y, name)
    if before is None or y_set is None:
        return ""
    old, by_y_only = _aspects(before), _aspects(y_set)
    changed, overridden = set(), set()
    for by_x, final in zip(x_stacks, finals, strict=True):
        x_set, after = _adapter(by_x, name), _adapter(final, name)
        if x_set is None or after is None or x_set == before:
            continue
        set_by_x = {k for k, v in _aspects(x_set).items() if old.get(k) != v}
        changed |= set_by_x
        if x_set.enabled and not after.enabled:
            overridden |= set_by_x
        last = _aspects(after)
        overridden |= {k for k in set_by_x if by_y_only.get(k) != old.get(k) and last.get(k) == by_y_only.get(k)}
    if not overridden:
        return ""
    return name if overridden == changed else f"{name} ({', '.join(sorted(overridden))})"


EDITS: dict[str, Callable] = {"strength": Cells.strength, "adapters": Cells.adapters, "stacks": Cells.stacks}


def check_axis(text: str, which: str, locate: prompt_tags.Locate) -> str | None:
    """None when the axis reads (and its LoRA tags are found), else the problem in plain words: what the
    node shows at queue time (names in the stack are checked when it runs)."""
    try:
        axis = parse_axis(text, which)
        if axis.kind == "stacks":
            for value in axis.values:
                for piece in _label_and_body(value)[1].split(";"):
                    for tag in prompt_tags.parse(piece)[1]:
                        prompt_tags.locate_tag(tag, locate)
    except SpecError as exc:
        return str(exc)
    except LoraFileError as exc:
        return f"{which} axis: {exc}"
    return None
