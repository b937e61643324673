"""Block weights on Krea 2, by the names its users know (ComfyUI's and the trainers' original names) or diffusers'.

- ``blocks.N-M`` (= ``transformer_blocks.N-M``): the 28 single-stream blocks;
- ``txtfusion.layerwise_blocks.N-M`` and ``txtfusion.refiner_blocks.N-M`` (= ``text_fusion.*``): the text-fusion
  transformer's two block lists (2 + 2 in every Krea 2), inside the denoiser;
- a whole part, without an index: ``first`` (``img_in``), ``tmlp`` (``time_embed``), ``tproj``
  (``time_mod_proj``), ``txtmlp`` (``txt_in``), ``txtfusion`` (``text_fusion``: its blocks and its tap
  ``projector``), ``last`` (``final_layer``), as ComfyUI's Krea 2 block-merge nodes name the regions.

A block's modulation is not its own layer: one shared ``tproj`` (``time_mod_proj``) makes every block's shift,
scale and gate, so ``blocks.0=0`` leaves a LoRA's ``tproj`` change in place (``tproj=0`` removes it everywhere).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import SpecError
from ...stacks.block_weights import Scheme

if TYPE_CHECKING:
    import torch

_KEY = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)(?:\.(\d+)(?:-(\d+))?)?$")
# name users write -> the diffusers module list it means
LISTS = {"blocks": "transformer_blocks", "transformer_blocks": "transformer_blocks",
         "txtfusion.layerwise_blocks": "text_fusion.layerwise_blocks",
         "text_fusion.layerwise_blocks": "text_fusion.layerwise_blocks",
         "txtfusion.refiner_blocks": "text_fusion.refiner_blocks",
         "text_fusion.refiner_blocks": "text_fusion.refiner_blocks"}
SHOWN = ("blocks", "txtfusion.layerwise_blocks", "txtfusion.refiner_blocks")
# name users write -> the diffusers module it means (weighted whole)
PARTS = {"first": "img_in", "img_in": "img_in", "tmlp": "time_embed", "time_embed": "time_embed",
         "tproj": "time_mod_proj", "time_mod_proj": "time_mod_proj", "txtmlp": "txt_in", "txt_in": "txt_in",
         "txtfusion": "text_fusion", "text_fusion": "text_fusion", "last": "final_layer",
         "final_layer": "final_layer"}


def _count(model: torch.nn.Module, path: str) -> int:
    try:
        return len(model.get_submodule(path))
    except AttributeError:
        return 0


def _check(key: str, value, model: torch.nn.Module) -> tuple[str, int | None, int | None]:
    """(diffusers path, first index, last index) for a key, or a SpecError naming what this model has."""
    if isinstance(value, tuple):
        raise SpecError(f"{key!r}: Krea 2 blocks and parts take one value")
    match = _KEY.match(key)
    name, start, end = match.groups() if match else (key, None, None)
    if name in PARTS and start is None:
        return PARTS[name], None, None
    if name not in LISTS:
        shown = ", ".join(f"{n} (0-{_count(model, LISTS[n]) - 1})" for n in SHOWN)
        raise SpecError(f"{key!r}: Krea 2 block groups are {shown} (or their diffusers names transformer_blocks, "
                        f"text_fusion.*_blocks); whole parts: first, tmlp, tproj, txtmlp, txtfusion, last")
    path, count = LISTS[name], _count(model, LISTS[name])
    if start is None:
        return path, None, None
    lo, hi = int(start), int(end if end is not None else start)
    if hi >= count or lo > hi:
        raise SpecError(f"{key!r}: {name} has blocks 0-{count - 1}")
    return path, lo, hi


def _rule(key: str, value, model: torch.nn.Module) -> Callable[[str], float | None]:
    path, lo, hi = _check(key, value, model)
    prefix = path + "."

    def rule(name: str):
        if name == path or (lo is None and name.startswith(prefix)):
            return float(value)
        if lo is None or not name.startswith(prefix):
            return None
        index = name[len(prefix):].split(".", 1)[0]
        return float(value) if index.isdigit() and lo <= int(index) <= hi else None

    return rule


BLOCKS = Scheme(_KEY, "blocks.N-M, txtfusion.layerwise_blocks.N-M, txtfusion.refiner_blocks.N-M (or the diffusers "
                "names) or a part (first, tmlp, tproj, txtmlp, txtfusion, last)", _rule)
