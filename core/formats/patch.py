"""The format-independent description of what a LoRA file does to one module."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Component key for patches whose file does not say which model they belong to (PEFT
# ``base_model.model.*`` files, unprefixed diffusers keys): resolved against every component.
ANY_COMPONENT = "*"


@dataclass(frozen=True)
class ModulePatch:
    """A low-rank update ``up @ down * alpha / rank`` for one module, optionally DoRA-normalised.

    ``down`` is [rank, in] (linear), [rank, in, kh, kw] (conv) or [rank, in*kh*kw] (a conv
    delta built from flattened factors; reshaped when fitted to the layer); ``up`` is [out, rank]
    or [out, rank, 1, 1]. ``alpha`` None means alpha = rank (scale 1), as in diffusers files.
    ``dora_scale`` is DoRA's magnitude: [out] / [out, 1, ...] (output axis) or [1, in, ...]
    (input axis); it needs the base weight, so it is resolved when the patch is fitted.
    """

    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None = None
    dora_scale: torch.Tensor | None = None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        return (self.rank if self.alpha is None else self.alpha) / self.rank

    @property
    def in_features(self) -> int:
        return int(self.down[0].numel())

    @property
    def out_features(self) -> int:
        return int(self.up.shape[0])

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.down, self.up) + (() if self.dora_scale is None else (self.dora_scale,))


def alpha_of(parts) -> float | None:
    """A module's ``alpha`` tensor as a float; missing or 0 mean "alpha = rank" (kohya's and LyCORIS' rule)."""
    alpha = parts.get("alpha")
    if alpha is None:
        return None
    value = float(alpha.float().reshape(-1)[0].item())
    return None if value == 0 else value


@dataclass(frozen=True)
class ConvertedLora:
    """Patches grouped by component; module names are as the file names them (resolved later).

    ``ignored`` lists the file's keys the converter did not use, so the load report can show them, and ``unknown``
    how many modules those stand for beyond the modules understood;
    ``notes`` are plain-words remarks for the report (e.g. modules of an unsupported algorithm);
    ``made_for`` is what the keys and shapes suggest the file was trained for ("" = no idea).
    """

    format: str
    patches: dict[str, dict[str, ModulePatch]]
    ignored: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    made_for: str = ""
    unknown: int = 0

    @property
    def total(self) -> int:
        return sum(len(p) for p in self.patches.values())
