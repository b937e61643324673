"""Per-block weights: which multiplier each denoiser module gets.

Three spellings, one rule set (entries apply in order; later ones win):
- diffusers' dict form for UNets: ``down``, ``mid``, ``up``, ``down.block_1``, ``up.block_0`` (a value
  or one value per layer), as ``set_adapters`` takes it; blocks and layers are matched by index;
- A1111 LoRA Block Weight vectors (``lbw``): 17/26 values for SD 1.x, 12/20 for SDXL, where BASE is
  the text encoders' multiplier and the other ids name UNet blocks (IN04, M00, OUT05, ...);
- index ranges for transformers: ``transformer_blocks.0-5``, ``single_transformer_blocks.3``
  (exact index: ``transformer_blocks.0`` never touches ``single_transformer_blocks.0``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import SpecError
from ..models.family import Family

if TYPE_CHECKING:
    import torch

Entry = tuple[str, object]  # (key, float | tuple[float, ...])

PRESETS = {  # multipliers per A1111 block id group; BASE is the text encoders
    "ALL": {"BASE": 1, "IN": 1, "M": 1, "OUT": 1},
    "NONE": {"BASE": 0, "IN": 0, "M": 0, "OUT": 0},
    "BASE": {"BASE": 1, "IN": 0, "M": 0, "OUT": 0},
    "IN": {"BASE": 1, "IN": 1, "M": 0, "OUT": 0},
    "MID": {"BASE": 1, "IN": 0, "M": 1, "OUT": 0},
    "OUT": {"BASE": 1, "IN": 0, "M": 0, "OUT": 1},
    "INOUT": {"BASE": 1, "IN": 1, "M": 0, "OUT": 1},
}
_RANGE_KEY = re.compile(r"^([A-Za-z_][\w]*)(?:\.(\d+)(?:-(\d+))?)?$")


def lbw_vector(text: str, family: Family, a: float = 1.0, b: float = 1.0, seed: int = 0) -> tuple[float, ...]:
    """'1,0,R,A,...' or a preset name -> numbers. R: random 0..1 from ``seed`` in order; A/B: the A/B
    values; a/b: half of them. The length must be one this family knows."""
    if not family.lbw:
        raise SpecError(f"lbw vectors are for UNet models; {family.title} uses transformer block ranges "
                        "such as transformer_blocks.0-5=0.5")
    name = text.strip().upper()
    if name in PRESETS:
        ids = family.lbw[max(family.lbw)]
        group = PRESETS[name]
        return tuple(float(group["BASE" if i == "BASE" else i.rstrip("0123456789")]) for i in ids)
    rng = random.Random(seed)
    tokens = {"A": a, "B": b, "a": a / 2, "b": b / 2}
    values = []
    for token in (t.strip() for t in text.split(",")):
        if token == "R":
            values.append(round(rng.random(), 3))
        elif token in tokens:
            values.append(float(tokens[token]))
        else:
            try:
                values.append(float(token))
            except ValueError:
                raise SpecError(f"lbw: {token!r} is not a number, R, A, B, a or b") from None
    if len(values) not in family.lbw:
        raise SpecError(f"lbw: {family.title} takes {' or '.join(map(str, sorted(family.lbw)))} values "
                        f"(or a preset: {', '.join(PRESETS)}), got {len(values)}")
    return tuple(values)


def text_multiplier(entries: tuple[Entry, ...]) -> float:
    """The lbw BASE value (text encoders), 1.0 without a vector."""
    value = 1.0
    for key, val in entries:
        if key == "lbw":
            value = float(val[0])
    return value


def _range_rule(key: str, value, model: torch.nn.Module) -> Callable[[str], float | None]:
    if isinstance(value, tuple):
        raise SpecError(f"{key!r}: transformer block ranges take one value")
    _check_range(key, model)
    group, start, end = _RANGE_KEY.match(key).groups()
    lo = int(start) if start is not None else None
    hi = int(end) if end is not None else lo

    def rule(name: str):
        bits = name.split(".")
        if bits[0] != group:
            return None
        if lo is None:
            return float(value)
        return float(value) if len(bits) > 1 and bits[1].isdigit() and lo <= int(bits[1]) <= hi else None

    return rule


def _check_range(key: str, model: torch.nn.Module) -> None:
    import torch

    match = _RANGE_KEY.match(key)
    groups = {n: len(m) for n, m in model.named_children() if isinstance(m, torch.nn.ModuleList)}
    if not match or match.group(1) not in groups:
        shown = ", ".join(f"{n} (0-{c - 1})" for n, c in groups.items())
        raise SpecError(f"{key!r}: block groups of this transformer are {shown}")
    group, start, end = match.groups()
    last = int(end if end is not None else start) if start is not None else 0
    if start is not None and (last >= groups[group] or int(start) > last):
        raise SpecError(f"{key!r}: {group} has blocks 0-{groups[group] - 1}")


@dataclass(frozen=True)
class Scheme:
    """How one kind of denoiser names its blocks: the key spelling, its help text, the rule builder
    (``rule(key, value, model)`` validates against the model and returns name -> multiplier or None) and, for
    denoisers A1111's LoRA Block Weight vectors address, ``lbw_rule(values, family, model)`` (the same kind of
    function for a vector of ``family.lbw`` ids)."""

    key: re.Pattern
    help: str
    rule: Callable
    lbw_rule: Callable | None = None


# Transformers: index ranges of any ModuleList child (the scheme of every transformer family)
RANGES = Scheme(_RANGE_KEY, "lbw, <blocks>.N-M (e.g. transformer_blocks.0-5)", _range_rule)


def scheme_of(family: Family) -> Scheme:
    return family.blocks


def denoiser_rule(entries: tuple[Entry, ...], family: Family, model: torch.nn.Module) -> Callable[[str], float]:
    """module name -> multiplier for the denoiser (1.0 where no entry applies). Raises SpecError."""
    scheme = scheme_of(family)
    rules = [scheme.lbw_rule(value, family, model) if key == "lbw" else scheme.rule(key, value, model)
             for key, value in entries]

    def multiplier(name: str) -> float:
        result = 1.0
        for rule in rules:
            value = rule(name)
            if value is not None:
                result = value
        return result

    return multiplier
