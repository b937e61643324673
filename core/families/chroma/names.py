"""Chroma's original (lodestones / BFL / ComfyUI) module names -> diffusers names (sd-scripts, ai-toolkit and
ComfyUI-saved LoRAs use them).

Chroma is FLUX.1 schnell with its modulation layers pruned, so every double/single-block name and row split is
Flux's (``families/flux/names.py``: its entries for layers Chroma lacks, the ``*_mod.lin`` / ``modulation.lin``
modulations, ``time_in`` / ``vector_in`` / ``guidance_in`` and ``final_layer.adaLN_modulation.1``, are skipped
because the live model has no such module). New: the approximator that computes every block's modulation,
``distilled_guidance_layer``, whose MLP layers are ``in_layer`` / ``out_layer`` in the original and ``linear_1`` /
``linear_2`` in diffusers (``convert_chroma_transformer_checkpoint_to_diffusers``); ``in_proj`` / ``out_proj``
keep their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.original_names import RowSplit, add, blocks
from ..flux.names import flux_names

if TYPE_CHECKING:
    import torch

APPROXIMATOR = "distilled_guidance_layer"


def chroma_names(model: torch.nn.Module) -> dict[str, str | RowSplit]:
    table = flux_names(model)
    for i in blocks(getattr(model, APPROXIMATOR, None), "layers"):
        layer = f"{APPROXIMATOR}.layers.{i}."
        add(table, model, layer + "in_layer", layer + "linear_1")
        add(table, model, layer + "out_layer", layer + "linear_2")
    return table
