"""A LoRA Deck stack fitted to a mirror (mirror.py) as the patches ComfyUI's ``ModelPatcher.add_patches`` takes.

Each fitted patch goes to its mirror module's ``Slot``: a plain key, a slice ``(key, (dim, offset, size))`` of a
fused layer (kept as the tuple ComfyUI's own key map uses, with block weights too), or ``(key, None, function)``.
What it carries is described here without ComfyUI's classes (``nodes/host.py`` builds those):

- ``LoraPatch(up, down, alpha)``: ComfyUI's LoRA adapter with the file's own tensors, so ComfyUI computes
  ``W + strength * alpha / rank * up @ down`` exactly as it does for the file itself;
- ``FactorPatch(algorithm, parts)``: a LyCORIS module (LoHa, LoKr, LoCon with a Tucker core) whose layer is a
  whole ComfyUI key: the file's own factors, which ComfyUI's own adapter for that algorithm multiplies as it does
  for the file itself (a product split over a fused layer's slices goes as its exact pair instead);
- ``DiffPatch(diff)``: a whole difference ``W + strength * diff`` (ComfyUI's ``("diff", ...)``): DoRA's
  ``D - W`` (linear in the strength, ComfyUI's convention; peft's merge at 1), LyCORIS products built dense,
  biases, norms and other whole parameters.

Strengths: one ``add_patches`` call takes one strength, so patches are grouped by (MODEL or CLIP, strength);
block weights multiply the strength of each module as they do on LoRA Deck's own pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.errors import SpecError
from ...core.formats import ModulePatch, ParamDelta
from ...core.stacks import block_weights
from .mirror import Mirror

MODEL, CLIP = "model", "clip"


@dataclass(frozen=True)
class LoraPatch:
    up: torch.Tensor
    down: torch.Tensor
    alpha: float | None  # None: alpha = rank (scale 1)


@dataclass(frozen=True)
class FactorPatch:
    algorithm: str  # "lora" (with lora_mid), "loha", "lokr": comfy.weight_adapter's LoRA, LoHa, LoKr
    parts: dict  # the file's part names (hada_w1_a, lokr_w1, alpha, ...) -> tensors


@dataclass(frozen=True)
class DiffPatch:
    diff: torch.Tensor


@dataclass
class Group:
    """Patches for one ``add_patches`` call: ``target`` MODEL or CLIP, one strength."""

    target: str
    strength: float
    patches: dict


def _is_identity(matrix: torch.Tensor) -> bool:
    return (matrix.dim() == 2 and matrix.shape[0] == matrix.shape[1] and bool((matrix.diagonal() == 1).all())
            and int(torch.count_nonzero(matrix)) == matrix.shape[0])


def comfy_patch(fitted, shape: tuple[int, ...], whole: bool = True):
    """The patch for one fitted patch of a weight of ``shape`` (the slot's shape); ``whole``: the slot is a whole
    ComfyUI key (not a slice of a fused layer, not reordered)."""
    if isinstance(fitted, ParamDelta):
        return DiffPatch(fitted.delta)
    if not isinstance(fitted, ModulePatch):
        raise TypeError(f"not a fitted patch: {type(fitted).__name__}")
    factors = fitted.factors
    if factors is not None and whole and fitted.dora_scale is None and fitted.out_features == shape[0]:
        return FactorPatch(factors.algorithm, dict(factors.parts))
    up, down = fitted.up.flatten(1), fitted.down.flatten(1)
    # a dense change written as an exact pair (identity x matrix): give ComfyUI the matrix itself
    if _is_identity(up):
        return DiffPatch((down * fitted.scale if fitted.scale != 1 else down).reshape(shape))
    if _is_identity(down):
        return DiffPatch((up * fitted.scale if fitted.scale != 1 else up).reshape(shape))
    return LoraPatch(fitted.up, fitted.down, fitted.alpha)


def _module(path: str, fitted) -> str:
    return path[: -len(fitted.param) - 1] if isinstance(fitted, ParamDelta) else path


def refuse_schedules(spec) -> None:
    if spec.schedules:
        shown = ", ".join(f"{k}={s.text()}" for k, s in spec.schedules)
        raise SpecError(f"adapter {spec.name!r} has a strength schedule ({shown}). ComfyUI's MODEL takes one "
                        "strength per LoRA; schedules over the steps need LoRA Deck's Generate. Give it a number.")


def groups(mirror: Mirror, adapters, block_rule) -> list[Group]:
    """``adapters``: (AdapterSpec, PreparedAdapter) in stack order; ``block_rule(blocks)`` -> module name ->
    multiplier for the denoiser. Disabled adapters and zero strengths add nothing."""
    family = mirror.family
    out: list[Group] = []
    for spec, prepared in adapters:
        if not spec.enabled:
            continue
        refuse_schedules(spec)
        for component, patches in prepared.patches.items():
            if not spec.loads_into(component) or component not in mirror.models:
                continue
            strength = spec.effective_weight(component, family)
            if component == family.denoiser:
                target = MODEL
                rule = block_rule(spec.blocks) if spec.blocks else (lambda name: 1.0)
            else:
                target = CLIP
                text = block_weights.text_multiplier(spec.blocks)
                rule = lambda name, text=text: text  # noqa: E731
            mine: dict[float, Group] = {}
            for path, fitted in patches.items():
                value = strength * rule(_module(path, fitted))
                if value == 0:
                    continue
                slot = mirror.slot(component, path)
                shape = tuple(mirror.models[component].get_parameter(_param_path(path, fitted)).shape)
                group = mine.get(value)
                if group is None or slot.patch_key in group.patches:
                    group = mine[value] = Group(target, value, {})
                    out.append(group)
                whole = slot.offset is None and slot.function is None
                group.patches[slot.patch_key] = comfy_patch(fitted, shape, whole)
    return out


def _param_path(path: str, fitted) -> str:
    return path if isinstance(fitted, ParamDelta) else f"{path}.weight"
