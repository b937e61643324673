"""The format-independent description of what a LoRA file does to one module."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModulePatch:
    """A low-rank update ``up @ down * alpha / rank`` for one module.

    ``down`` is [rank, in] (linear) or [rank, in, kh, kw] (conv); ``up`` is [out, rank] or
    [out, rank, 1, 1]. ``alpha`` None means alpha = rank (scale 1), as in diffusers files.
    """

    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None = None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        return (self.rank if self.alpha is None else self.alpha) / self.rank

    @property
    def in_features(self) -> int:
        return int(self.down.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.up.shape[0])


@dataclass(frozen=True)
class ConvertedLora:
    """Patches grouped by component; module names are as the file names them (resolved later).

    ``ignored`` lists keys the converter did not use, so the load report can show them.
    """

    format: str
    patches: dict[str, dict[str, ModulePatch]]
    ignored: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(len(p) for p in self.patches.values())
