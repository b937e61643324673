"""The format-independent description of what a LoRA file does to one module."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from .lowrank import FormatError, Product

# Component key for patches whose file does not say which model they belong to (PEFT
# ``base_model.model.*`` files, unprefixed diffusers keys): resolved against every component.
ANY_COMPONENT = "*"


@contextlib.contextmanager
def module_named(name: str):
    """Prefix a FormatError raised while converting one module with that module's name."""
    try:
        yield
    except FormatError as exc:
        raise FormatError(f"module {name[:120]}: {exc}") from None


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


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

    def __post_init__(self):
        down, up = self.down, self.up
        if down.dim() not in (2, 4) or up.dim() not in (2, 4):
            raise FormatError(f"down {_shape(down)} / up {_shape(up)} are not 2-D or 4-D")
        if up.shape[1] != down.shape[0]:
            raise FormatError(f"down {_shape(down)} has rank {down.shape[0]} but up {_shape(up)} has {up.shape[1]}")
        if up.dim() == 4 and tuple(up.shape[2:]) != (1, 1):
            raise FormatError(f"up {_shape(up)} has a kernel; only down may")
        if self.dora_scale is not None and self.dora_scale.dim() == 0:
            raise FormatError("the DoRA magnitude is a single number")

    @property
    def kernel(self) -> tuple[int, ...]:
        """The conv kernel the pair declares ((kh, kw) for a 4-D ``down``), () when it does not say."""
        return tuple(self.down.shape[2:])

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


@dataclass(frozen=True)
class LazyPatch:
    """A patch that is a product of the file's factors (LoHa, LoKr, Tucker cores), known by its shapes only.

    ``matching`` compares the declared shape with the live module and calls ``build`` only when it fits, so a
    small file cannot make LoRA Deck allocate more than about the layer it patches (the product is built as a
    pair or as a dense delta, whichever holds fewer numbers, chosen before anything is multiplied)."""

    product: Product
    scale: float
    dora_scale: torch.Tensor | None = None

    @property
    def out_features(self) -> int:
        return self.product.rows

    @property
    def in_features(self) -> int:
        return self.product.cols

    @property
    def kernel(self) -> tuple[int, ...]:
        return self.product.kernel

    @property
    def rank(self) -> int:
        return self.product.rank

    def build(self) -> ModulePatch:
        up, down = self.product.cheapest()
        return ModulePatch(down=down, up=up, alpha=self.scale * down.shape[0], dora_scale=self.dora_scale)


@dataclass(frozen=True)
class ParamDelta:
    """The difference itself for one parameter of a module, where no low-rank pair can carry it: a bias
    (``diff_b``), a norm's weight (a 1-D ``diff``), a modulation table (``diff_m``), the weight of a layer peft
    cannot wrap. Keyed ``<module>.<param>`` among a component's patches; ``strength x delta`` is added to the
    parameter (adapters/param_deltas.py)."""

    delta: torch.Tensor
    param: str  # "bias", "weight", or the parameter's own name ("modulation")
    dora_scale = None  # never DoRA-normalised (read where any patch may be)

    @property
    def out_features(self) -> int:
        return int(self.delta.shape[0]) if self.delta.dim() else 1

    @property
    def in_features(self) -> int:
        return int(self.delta[0].numel()) if self.delta.dim() > 1 else 1

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.delta,)


AnyPatch = ModulePatch | LazyPatch | ParamDelta


def alpha_of(parts) -> float | None:
    """A module's ``alpha`` tensor as a float; missing or 0 mean "alpha = rank" (kohya's and LyCORIS' rule).
    An infinite alpha (files/checks lets +inf through for full-rank LoKr, which ignores it) is a FormatError
    here, where it would scale the change."""
    alpha = parts.get("alpha")
    if alpha is None:
        return None
    value = float(alpha.reshape(-1)[0].item())  # in double precision: a float64 alpha must not become inf
    if not math.isfinite(value):
        raise FormatError(f"alpha is {value}, which would scale this module's change without bound")
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
    patches: dict[str, dict[str, AnyPatch]]
    ignored: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    made_for: str = ""
    unknown: int = 0

    @property
    def total(self) -> int:
        return sum(len(p) for p in self.patches.values())
