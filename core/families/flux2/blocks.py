"""Block weights on FLUX.2: index ranges of the transformer's blocks, by the names its users know.

ComfyUI, musubi-tuner and ai-toolkit call them ``double_blocks.N`` and ``single_blocks.N`` (BFL's names);
diffusers calls them ``transformer_blocks.N`` and ``single_transformer_blocks.N``. Both spellings work
(``double_blocks.0-4=0.5`` is ``transformer_blocks.0-4=0.5``). The shared modulation layers, the embedders and
the final layer belong to no block: block entries leave them at 1.
"""

from __future__ import annotations

from ...errors import SpecError
from ...stacks.block_weights import RANGES, Scheme

ALIASES = {"double_blocks": "transformer_blocks", "single_blocks": "single_transformer_blocks"}


def _rule(key: str, value, model):
    group, dot, rest = key.partition(".")
    if group not in ALIASES:
        return RANGES.rule(key, value, model)
    try:
        return RANGES.rule(ALIASES[group] + dot + rest, value, model)
    except SpecError as exc:  # "'double_blocks.5' is 'transformer_blocks.5': transformer_blocks has blocks 0-1"
        raise SpecError(f"{key!r} is {exc}") from None


BLOCKS = Scheme(RANGES.key, "lbw, double_blocks.N-M, single_blocks.N-M (or diffusers' transformer_blocks.N-M, "
                "single_transformer_blocks.N-M)", _rule)
