"""The SetAdapterWeights text: one adapter per line, readable by people who do not program.

    # comments and blank lines are ignored
    style: 0.8                          every component at 0.8
    detail: model=0.6, clip=0.3         denoiser / all text encoders
    detail: unet=0.5, text_encoder=0.2  one component by its diffusers name
    old_one: off                        disable (``on`` enables again)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import SpecError
from .families import CLIP_GROUP, MODEL_GROUP, Family
from .specs import MAX_STRENGTH, StackSpec
from .stack_ops import set_weights

SWITCHES = {"on": True, "off": False, "enable": True, "disable": False}


@dataclass(frozen=True)
class WeightLine:
    number: int
    name: str
    weights: tuple[tuple[str, float], ...]
    enabled: bool | None


def _number(raw: str, where: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SpecError(f"{where}: {raw!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > MAX_STRENGTH:
        raise SpecError(f"{where}: {raw!r} must be a finite number within +-{MAX_STRENGTH:g}")
    return value


def _split_name(line: str, where: str) -> tuple[str, str]:
    if line.startswith('"'):
        end = line.find('"', 1)
        if end < 0 or not line[end + 1 :].lstrip().startswith(":"):
            raise SpecError(f'{where}: a quoted name needs a closing quote and a colon: "name": 0.5')
        return line[1:end], line[end + 1 :].lstrip()[1:]
    name, colon, rest = line.partition(":")
    if not colon or not name.strip():
        raise SpecError(f"{where}: expected 'adapter name: weight', got {line!r}")
    return name.strip(), rest


def parse_line(number: int, line: str, components: tuple[str, ...]) -> WeightLine | None:
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    where = f"weights line {number}"
    name, rest = _split_name(line, where)
    rest = rest.strip()
    if rest.lower() in SWITCHES:
        return WeightLine(number, name, (), SWITCHES[rest.lower()])
    if "=" not in rest:
        value = _number(rest, where)
        return WeightLine(number, name, ((MODEL_GROUP, value), (CLIP_GROUP, value)), None)
    allowed = (MODEL_GROUP, CLIP_GROUP, *components)
    weights = []
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or key not in allowed:
            raise SpecError(f"{where}: {item!r} should be one of {', '.join(allowed)} followed by =number")
        weights.append((key, _number(raw.strip(), f"{where}, {key}")))
    return WeightLine(number, name, tuple(weights), None)


def parse(text: str, family: Family) -> list[WeightLine]:
    lines = (parse_line(i, raw, family.components) for i, raw in enumerate(text.splitlines(), start=1))
    return [line for line in lines if line is not None]


def apply_text(stack: StackSpec, text: str, family: Family) -> StackSpec:
    """Apply every line to ``stack``; an unknown adapter name is an error naming the line."""
    for line in parse(text, family):
        if line.name not in stack.names:
            raise SpecError(f"weights line {line.number}: no adapter named {line.name!r}; "
                            f"this pipeline has: {', '.join(stack.names) or 'no adapters'}")
        stack = set_weights(stack, line.name, dict(line.weights), line.enabled)
    return stack
