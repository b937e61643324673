"""The SetAdapterWeights text: one adapter per line, readable by people who do not program.

    # comments and blank lines are ignored
    style: 0.8                          every component at 0.8
    detail: model=0.6, clip=0.3         denoiser / all text encoders
    detail: unet=0.5, text_encoder=0.2  one component by its diffusers name
    old_one: off                        disable (``on`` enables again)
    style: down=0.9, up.block_1=[0.4,0.8,1.0]       diffusers' per-block form (UNet models)
    style: lbw=1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1    an A1111 block-weight vector or preset (lbw=OUT)
    style: lbw=1,A,A,B,B,R,R,0,1,1,1,1,1,1,1,1,1, A=0.5, B=0.2, seed=7
    flux_one: transformer_blocks.0-5=0.5, single_transformer_blocks.3=0   transformer block ranges
    style: model=1.0@0-0.5, 0.2@0.5-1   a strength schedule over the steps (schedules.py), denoiser only
    style: ramp(1.0, 0.2)               the denoiser ramps; the text encoders take the start value (1.0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SpecError
from ..models.family import CLIP_GROUP, MODEL_GROUP, Family
from . import schedules
from .block_weights import lbw_vector, scheme_of
from .specs import StackSpec, check_strength
from .stack_ops import set_weights

SWITCHES = {"on": True, "off": False, "enable": True, "disable": False}


_ITEM_SPLIT = re.compile(r",\s*(?=[A-Za-z_][\w.\-]*\s*=)")
_LBW_OPTIONS = {"A": 1.0, "B": 1.0, "seed": 0}


@dataclass(frozen=True)
class WeightLine:
    number: int
    name: str
    weights: tuple[tuple[str, float | schedules.Schedule], ...]
    enabled: bool | None
    blocks: tuple = ()  # block entries for the denoiser, or () when the line names none


def quote_name(name: str) -> str:
    """An adapter name as a line starts it: quoted, so spaces and colons in it are safe."""
    return f'"{name}"'


def split_name(line: str, where: str) -> tuple[str, str]:
    """'style: 0.8' -> ('style', ' 0.8'); '"my: lora": 1' -> ('my: lora', ' 1')."""
    if line.startswith('"'):
        end = line.find('"', 1)
        if end < 0 or not line[end + 1 :].lstrip().startswith(":"):
            raise SpecError(f'{where}: a quoted name needs a closing quote and a colon: "name": 0.5')
        return line[1:end], line[end + 1 :].lstrip()[1:]
    name, colon, rest = line.partition(":")
    if not colon or not name.strip():
        raise SpecError(f"{where}: expected 'adapter name: weight', got {line!r}")
    return name.strip(), rest


def parse_line(number: int, line: str, family: Family) -> WeightLine | None:
    components = family.components
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    where = f"weights line {number}"
    name, rest = split_name(line, where)
    rest = rest.strip()
    if rest.lower() in SWITCHES:
        return WeightLine(number, name, (), SWITCHES[rest.lower()])
    if "=" not in rest:
        if schedules.is_schedule(rest):  # the text encoders run once, before the first step: they take its value
            schedule = schedules.parse(rest, where)
            return WeightLine(number, name, ((MODEL_GROUP, schedule), (CLIP_GROUP, schedule.at(0.0))), None)
        value = check_strength(rest, where)
        return WeightLine(number, name, ((MODEL_GROUP, value), (CLIP_GROUP, value)), None)
    allowed = (MODEL_GROUP, CLIP_GROUP, *components)
    weights, blocks, options, lbw = [], [], dict(_LBW_OPTIONS), None
    for item in filter(None, (s.strip() for s in _ITEM_SPLIT.split(rest))):
        key, eq, raw = (part.strip() for part in item.partition("="))
        if not eq:
            raise SpecError(f"{where}: {item!r} should be key=value (e.g. model=0.8)")
        if key in allowed:
            weights.append((key, strength_value(key, raw, family, f"{where}, {key}")))
        elif key in options:
            value = check_strength(raw, f"{where}, {key}")
            options[key] = int(value) if key == "seed" else value
        elif key == "lbw":
            lbw = (len(blocks), raw)
            blocks.append(("lbw", raw))
        elif scheme_of(family).key.match(key):
            blocks.append((key, _block_value(raw, f"{where}, {key}")))
        else:
            raise SpecError(f"{where}: {item!r} should be one of {', '.join(allowed)}, {scheme_of(family).help} "
                            "followed by =value")
    if lbw is not None:
        blocks[lbw[0]] = ("lbw", lbw_vector(lbw[1], family, options["A"], options["B"], int(options["seed"])))
    return WeightLine(number, name, tuple(weights), None, tuple(blocks))


def strength_value(key: str, raw: str, family: Family, where: str) -> float | schedules.Schedule:
    """A number, or a schedule for the denoiser ('model' or its component name); SpecError otherwise."""
    if not schedules.is_schedule(raw):
        return check_strength(raw, where)
    if key not in (MODEL_GROUP, *family.denoisers):
        raise SpecError(f"{where}: a schedule over the steps works on the denoiser only (model= or "
                        f"{family.denoiser}=); the text encoders run once, before the first step, so give "
                        f"{key} a number")
    return schedules.parse(raw, where)


def _block_value(raw: str, where: str):
    """'0.5' -> 0.5 ; '[0.4, 0.8, 1]' -> (0.4, 0.8, 1.0)"""
    if raw.startswith("[") and raw.endswith("]"):
        return tuple(check_strength(v.strip(), where) for v in raw[1:-1].split(",") if v.strip())
    return check_strength(raw, where)


def parse(text: str, family: Family) -> list[WeightLine]:
    lines = []
    for i, raw in enumerate(text.splitlines(), start=1):
        try:
            line = parse_line(i, raw, family)
        except SpecError as exc:
            message = str(exc)
            raise SpecError(message if message.startswith("weights line") else f"weights line {i}: {message}") \
                from None
        if line is not None:
            lines.append(line)
    return lines


def apply_text(stack: StackSpec, text: str, family: Family, check_blocks=None) -> StackSpec:
    """Apply every line to ``stack``; errors name the line. ``check_blocks(entries)`` validates
    block entries against the live model (raises SpecError)."""
    for line in parse(text, family):
        if line.name not in stack.names:
            raise SpecError(f"weights line {line.number}: no adapter named {line.name!r}; "
                            f"this pipeline has: {', '.join(stack.names) or 'no adapters'}")
        if line.blocks and check_blocks is not None:
            try:
                check_blocks(line.blocks)
            except SpecError as exc:
                raise SpecError(f"weights line {line.number}: {exc}") from None
        stack = set_weights(stack, line.name, dict(line.weights), line.enabled, line.blocks or None)
    return stack
