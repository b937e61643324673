"""Block weights on SD-style UNets (SD 1.x/2.x and SDXL): diffusers' dict form and A1111 LoRA Block Weight ids.

- diffusers' dict form: ``down``, ``mid``, ``up``, ``down.block_1``, ``up.block_0`` (a value or one value per
  layer), as ``set_adapters`` takes it; blocks and layers are matched by index;
- A1111 vectors (``lbw``): the ids of ``Family.lbw`` (IN04, M00, OUT05, ...; BASE is the text encoders), found
  through the original SGM block of each diffusers module (``unet_names.block_id``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import SpecError
from ...models.family import Family
from ...stacks.block_weights import Scheme
from .unet_names import block_id

if TYPE_CHECKING:
    import torch

_UNET_KEY = re.compile(r"^(down|mid|up)(?:\.block_(\d+))?$")

# A1111 / LoRA Block Weight vectors: block ids in order, per vector length.
LBW_SD1 = {
    17: ("BASE", "IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "M00",
         "OUT03", "OUT04", "OUT05", "OUT06", "OUT07", "OUT08", "OUT09", "OUT10", "OUT11"),
    26: ("BASE", *(f"IN{i:02d}" for i in range(12)), "M00", *(f"OUT{i:02d}" for i in range(12))),
}


def _lbw_rule(values, family: Family, model: torch.nn.Module) -> Callable[[str], float | None]:
    layers = _layers_per_block(model)
    ids = dict(zip(family.lbw[len(values)], values, strict=True))

    def rule(name: str):
        block = block_id(name, layers)
        return None if block is None else float(ids.get(block, 0.0))

    return rule


def _layers_per_block(model: torch.nn.Module) -> int:
    return int(getattr(model.config, "layers_per_block", 2))


def _unet_rule(key: str, value, model: torch.nn.Module) -> Callable[[str], float | None]:
    _check_unet(key, value, model)
    part, block = _UNET_KEY.match(key).groups()
    prefix = {"down": "down_blocks.", "up": "up_blocks.", "mid": "mid_block."}[part]
    per_layer = isinstance(value, tuple)

    def rule(name: str):
        if not name.startswith(prefix):
            return None
        bits = name.split(".")
        if block is not None and (part == "mid" or bits[1] != block):
            return None
        if not per_layer:
            return float(value)
        if part != "mid" and len(bits) > 3 and bits[2] in ("attentions", "resnets"):
            return float(value[int(bits[3])])
        return float(value[-1])

    return rule


def _check_unet(key: str, value, model: torch.nn.Module) -> None:
    match = _UNET_KEY.match(key)
    if not match:
        raise SpecError(f"{key!r}: UNet block weights are down, mid, up, down.block_N or up.block_N")
    part, block = match.groups()
    layers = _layers_per_block(model)
    count = len(getattr(model, {"down": "down_blocks", "up": "up_blocks"}.get(part, "down_blocks")))
    if block is not None and (part == "mid" or int(block) >= count):
        raise SpecError(f"{key!r}: this UNet has {part}.block_0 to {part}.block_{count - 1}")
    if isinstance(value, tuple):
        want = 1 if part == "mid" else layers + (1 if part == "up" else 0)
        if len(value) != want:
            raise SpecError(f"{key!r}: expected {want} values (one per layer), got {len(value)}")


UNET = Scheme(_UNET_KEY, "down, mid, up, down.block_N, up.block_N, lbw", _unet_rule, _lbw_rule)
