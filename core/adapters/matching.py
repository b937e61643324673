"""Matching a converted file against a live pipeline's modules, before anything changes.

``prepare`` finds each patch's real module, checks every shape and value, and returns an
immutable ``PreparedAdapter`` with its load report. Only then may the model be touched.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from ..errors import IncompatibleLoraError, LoraFileError
from ..files.metadata import LoraMetadata, parse_metadata
from ..formats import ANY_COMPONENT, AnyPatch, ConvertedLora, LazyPatch, ModulePatch, ParamDelta
from ..formats.dora import axis_of, dora_delta
from ..formats.lowrank import FormatError
from ..formats.lycoris import dense_patch
from ..models.family import Family
from ..models.original_names import RowSplit
from .fusion import ORIGINAL
from .load_report import LoadReport
from .magnitude import WeightStats, check_magnitudes
from .module_index import PATCHABLE
from .param_deltas import parameter

log = logging.getLogger(__name__)

# How a pipeline's component describes its width, for "which pipeline it met" in errors.
WIDTH_ATTRIBUTES = (("cross_attention_dim", "cross-attention width"), ("hidden_size", "width"))
# Components that are a pipeline's denoiser in some family: a file's part for one of these that matches
# nothing here means the file was made for another base model.
DENOISERS = ("unet", "transformer")


def base_layer(model: torch.nn.Module, name: str) -> torch.nn.Module:
    module = model.get_submodule(name)
    return module.get_base_layer() if isinstance(module, BaseTunerLayer) else module


def original_weight(model: torch.nn.Module, name: str) -> torch.Tensor:
    """The module's base weight as loaded (the kept original while a fused adapter is baked in); for a
    parameter path (``<module>.<param>``, a ParamDelta's target) that parameter."""
    try:
        module = model.get_submodule(name)
    except AttributeError:
        module_name, _, param = name.rpartition(".")
        return parameter(model, module_name, param).detach()
    kept = getattr(module, ORIGINAL, None)
    return kept if kept is not None else base_layer(model, name).weight


@dataclass(frozen=True)
class PreparedAdapter:
    """A file resolved against one pipeline: real module name -> patch, per component."""

    sha256: str
    path: str
    patches: dict[str, dict[str, ModulePatch]]
    report: LoadReport


@dataclass(frozen=True)
class Shape:
    """What a patch must fit: a linear layer (``kernel`` empty) or a conv layer's [out, in, kh, kw]."""

    out: int
    inp: int
    kernel: tuple[int, ...] = ()

    @classmethod
    def of(cls, module: torch.nn.Module) -> Shape:
        if isinstance(module, torch.nn.Linear):
            return cls(module.out_features, module.in_features)
        return cls(module.out_channels, module.in_channels // module.groups, tuple(module.kernel_size))


def _fit_shapes(patch: ModulePatch, shape: Shape) -> ModulePatch | str:
    """The pair reshaped to the layer's layout, or a description of the mismatch."""
    down, up = patch.down, patch.up
    if not shape.kernel:
        down = down.flatten(1) if down.dim() == 4 and down.shape[2:] == (1, 1) else down
        up = up.flatten(1) if up.dim() == 4 and up.shape[2:] == (1, 1) else up
        want_down, want_up = (patch.rank, shape.inp), (shape.out, patch.rank)
    else:
        want_down = (patch.rank, shape.inp, *shape.kernel)
        want_up = (shape.out, patch.rank, 1, 1)
        # a flattened kernel [rank, in*kh*kw] (LoHa/LoKr factors, dense pairs) takes the layer's kernel
        down = down.reshape(want_down) if down.dim() == 2 and down.numel() == torch.Size(want_down).numel() else down
        up = up[:, :, None, None] if up.dim() == 2 else up
    if tuple(down.shape) != want_down or tuple(up.shape) != want_up:
        return f"down {tuple(patch.down.shape)} up {tuple(patch.up.shape)} vs layer needs {want_down} / {want_up}"
    return replace(patch, down=down, up=up)


def _low_rank_delta(patch: ModulePatch, shape) -> torch.Tensor:
    return (patch.up.float().flatten(1) @ patch.down.float().flatten(1)).reshape(shape) * patch.scale


def _declared_misfit(patch: LazyPatch, shape: Shape) -> str | None:
    """Why a product's declared shape cannot fit the layer (None: it fits), decided before anything is built."""
    kernel = math.prod(shape.kernel) if shape.kernel else 1
    kernel_ok = not patch.kernel or patch.kernel == shape.kernel or (not shape.kernel and math.prod(patch.kernel) == 1)
    if patch.out_features == shape.out and patch.in_features == shape.inp * kernel and kernel_ok:
        return None
    layer = [shape.out, shape.inp, *shape.kernel]
    return (f"a product of [{patch.out_features}, {patch.in_features}]"
            f"{f' with kernel {list(patch.kernel)}' if patch.kernel else ''} vs layer {layer}")


def _fit(patch: AnyPatch, shape: Shape, weight: torch.Tensor | None) -> ModulePatch | str:
    """Shapes fitted to the layer; a DoRA patch becomes its exact delta against ``weight``. A lazy product is
    built only here, once its declared shape fits."""
    if isinstance(patch, LazyPatch):
        misfit = _declared_misfit(patch, shape)
        if misfit is not None:
            return misfit
        patch = patch.build()
    fitted = _fit_shapes(patch, shape)
    if isinstance(fitted, str) or patch.dora_scale is None:
        return fitted
    if axis_of(patch.dora_scale, weight) is None:
        return f"DoRA magnitude {tuple(patch.dora_scale.shape)} vs layer weight {tuple(weight.shape)}"
    delta = dora_delta(weight, _low_rank_delta(fitted, weight.shape), patch.dora_scale)
    # a dense delta is as big as the layer: keep it in the layer's dtype (peft would cast it there anyway)
    return _fit_shapes(dense_patch(delta.to(weight.dtype) if weight.is_floating_point() else delta), shape)


def _rows(tensor: torch.Tensor, ranges) -> torch.Tensor:
    return torch.cat([tensor[a:b] for a, b in ranges]) if len(ranges) > 1 else tensor[ranges[0][0]:ranges[0][1]]


def _fused_weight(model: torch.nn.Module, split: RowSplit) -> torch.Tensor:
    """The original fused layer's weight, assembled from its parts (rows in the fused order)."""
    first = original_weight(model, split.parts[0][0])
    fused = torch.empty(split.rows, *first.shape[1:], dtype=first.dtype)
    for name, ranges in split.parts:
        weight, offset = original_weight(model, name).detach(), 0
        for a, b in ranges:
            fused[a:b] = weight[offset : offset + b - a]
            offset += b - a
    return fused


def _split(patch: AnyPatch, split: RowSplit, model: torch.nn.Module) -> list[tuple[str, ModulePatch]] | str:
    """A patch of a fused original layer as exact patches of its parts (rows of ``up``, or of a DoRA delta)."""
    shapes = [Shape.of(base_layer(model, name)) for name, _ in split.parts]
    if any(s.kernel or s.inp != shapes[0].inp for s in shapes):
        return f"the parts of this fused layer are not linear layers of one input width: {shapes}"
    fused = Shape(split.rows, shapes[0].inp)
    whole = _fit(patch, fused, _fused_weight(model, split) if patch.dora_scale is not None else None)
    if isinstance(whole, str):
        return whole
    return [(name, replace(whole, up=_rows(whole.up, ranges))) for name, ranges in split.parts]


def _fits(patch: AnyPatch, target, model: torch.nn.Module) -> bool:
    if isinstance(target, RowSplit):
        return target.rows == patch.out_features
    if isinstance(patch, ParamDelta) or not isinstance(base_layer(model, target), PATCHABLE):
        return not isinstance(_param_parts(patch, target, model), str)
    shape = Shape.of(base_layer(model, target))
    if isinstance(patch, LazyPatch):
        return _declared_misfit(patch, shape) is None
    return not isinstance(_fit_shapes(patch, shape), str)


def _home(name: str, patch: AnyPatch, family: Family, indexes, models) -> str:
    """The component an unprefixed module belongs to: the first whose layer has that name and fits."""
    name = _module_of(name, patch)
    having = [c for c in family.components if c in indexes and name in indexes[c]]
    for component in having:
        if _fits(patch, indexes[component][name], models[component]):
            return component
    return having[0] if having else family.denoiser


def _by_component(converted: ConvertedLora, family: Family, indexes, models) -> dict[str, dict[str, AnyPatch]]:
    grouped = {c: dict(p) for c, p in converted.patches.items() if c != ANY_COMPONENT}
    for name, patch in converted.patches.get(ANY_COMPONENT, {}).items():
        grouped.setdefault(_home(name, patch, family, indexes, models), {})[name] = patch
    return grouped


def _pipeline_text(family: Family, models) -> str:
    """'Stable Diffusion 1.x/2.x pipeline (unet cross-attention width 768, text_encoder width 768)'."""
    widths = []
    for component, model in models.items():
        config = getattr(model, "config", None)
        for attribute, label in WIDTH_ATTRIBUTES:
            value = getattr(config, attribute, None)
            if isinstance(value, int):
                widths.append(f"{component} {label} {value}")
                break
    return f"{family.title} pipeline" + (f" ({', '.join(widths)})" if widths else "")


def _made_for_text(base: LoraMetadata, converted: ConvertedLora) -> str:
    said = f" Its metadata says {base.base_model} ({base.base_model_source})." if base.base_model else ""
    seems = f" Its keys and shapes suggest {converted.made_for}." if converted.made_for else ""
    return said + seems


def _resolved(patch: AnyPatch, target, model: torch.nn.Module) -> list[tuple[str, AnyPatch]] | str:
    """(real module or parameter path, fitted patch) pairs for one patch of the file, or why it does not fit."""
    if isinstance(patch, ParamDelta) or (isinstance(target, str) and not isinstance(base_layer(model, target),
                                                                                    PATCHABLE)):
        return _param_parts(patch, target, model)
    if isinstance(target, RowSplit):
        return _split(patch, target, model)
    fit = _fit(patch, Shape.of(base_layer(model, target)), original_weight(model, target))
    return fit if isinstance(fit, str) else [(target, fit)]


def _module_of(name: str, patch: AnyPatch) -> str:
    """The module part of a patch's name (a ParamDelta is keyed ``<module>.<param>``)."""
    return name[: -len(patch.param) - 1] if isinstance(patch, ParamDelta) else name


def _dense(patch: AnyPatch, weight: torch.Tensor) -> ParamDelta | str:
    """A low-rank or LyCORIS patch of a layer peft cannot wrap (a 3-D conv, an embedding) as the whole difference
    of its weight, when the sizes agree."""
    if patch.dora_scale is not None:
        return f"a DoRA patch on a {tuple(weight.shape)} weight of a layer that is not a Linear or Conv2d"
    if isinstance(patch, LazyPatch):
        if patch.out_features * patch.in_features != weight.numel() or patch.out_features != weight.shape[0]:
            return f"a product of [{patch.out_features}, {patch.in_features}] vs weight {list(weight.shape)}"
        patch = patch.build()
    if patch.out_features != weight.shape[0] or patch.in_features * patch.out_features != weight.numel():
        return f"down {tuple(patch.down.shape)} up {tuple(patch.up.shape)} vs weight {list(weight.shape)}"
    return ParamDelta(_low_rank_delta(patch, weight.shape), "weight")


def _param_parts(patch: AnyPatch, target, model: torch.nn.Module) -> list[tuple[str, ParamDelta]] | str:
    """(parameter path, difference) pairs for a whole-parameter patch (or a pair on a layer peft cannot wrap)."""
    if isinstance(target, RowSplit):
        if not isinstance(patch, ParamDelta) or patch.delta.dim() != 1 or patch.delta.shape[0] != target.rows:
            return f"a {patch.param if isinstance(patch, ParamDelta) else 'patch'} that does not split by rows"
        parts = [(name, ParamDelta(_rows(patch.delta, ranges), patch.param)) for name, ranges in target.parts]
        found = [_param_parts(part, name, model) for name, part in parts]
        bad = next((f for f in found if isinstance(f, str)), None)
        return bad if bad is not None else [pair for f in found for pair in f]
    name = patch.param if isinstance(patch, ParamDelta) else "weight"
    try:
        live = parameter(model, target, name)
    except AttributeError:
        return f"has no parameter {name!r}"
    if not isinstance(live, torch.Tensor):
        return f"has no {name}"
    if not isinstance(patch, ParamDelta):
        patch = _dense(patch, live)
        if isinstance(patch, str):
            return patch
    if tuple(patch.delta.shape) != tuple(live.shape):
        return f"a {name} difference {list(patch.delta.shape)} vs {name} {list(live.shape)}"
    return [(f"{target}.{name}", patch)]


def _target(index: dict, name: str, patch: AnyPatch):
    """(where a file's patch goes, the patch): a ParamDelta's name may be a parameter in a family's table of
    original names (``blocks.0.modulation`` -> ``blocks.0.scale_shift_table``), else it names its module."""
    if isinstance(patch, ParamDelta):
        whole = index.get(name)
        if isinstance(whole, str) and whole != name:
            module, _, param = whole.rpartition(".")
            return module, replace(patch, param=param)
    return index.get(_module_of(name, patch)), patch


def _change(patch) -> torch.Tensor:
    """The dense change a fitted patch makes (a whole-parameter difference, where supported, is its own)."""
    delta = getattr(patch, "delta", None)
    return delta.float() if delta is not None else _low_rank_delta(patch, (patch.out_features, -1))


def _same_change(first, second) -> bool:
    """Whether two patches of one module change it alike (within 1e-3 of the change's norm). Some files carry a
    module twice under two names, e.g. Z-Image's fused ``attention.qkv`` beside its split ``to_q/k/v``: the same
    delta, which diffusers and ComfyUI each apply once (each reads one of the two names)."""
    a, b = _change(first), _change(second)
    return a.shape == b.shape and bool((a - b).norm() <= 1e-3 * a.norm().clamp_min(1e-12))


@dataclass
class _Matching:
    fitted: dict[str, dict[str, ModulePatch]]
    counts: list[tuple[str, int, int]]
    unmatched: list[str]
    mismatched: list[str]


def _match(path: str, converted, family, indexes, models) -> _Matching:
    result = _Matching({}, [], [], [])
    for component, patches in _by_component(converted, family, indexes, models).items():
        index, model, matched = indexes.get(component), models.get(component), 0
        for name, patch in patches.items():
            target, patch = _target(index, name, patch) if index is not None else (None, patch)
            if target is None:
                result.unmatched.append(f"{component}:{name}")
                continue
            try:
                parts = _resolved(patch, target, model)
            except FormatError as exc:
                raise LoraFileError(path, f"cannot be applied to {component} module {name}: {exc}",
                                    "The file is damaged or its values are absurd; do not use it.") from None
            if isinstance(parts, str):
                result.mismatched.append(f"{component}.{name}: {parts}")
                continue
            into = result.fitted.setdefault(component, {})
            for real, fit in parts:
                if real in into:
                    if not _same_change(into[real], fit):
                        raise LoraFileError(path, f"patches {component} module {real} twice with different "
                                            f"changes (e.g. as {name})", "The file is malformed; re-export it "
                                            "from its trainer.")
                    if getattr(fit, "rank", 0) < getattr(into[real], "rank", 0):  # the same change twice: once,
                        # at the lower rank
                        into[real] = fit
                    continue
                into[real] = fit
            matched += 1
        result.counts.append((component, matched, len(patches)))
    return result


def prepare(path: str, sha256: str, converted: ConvertedLora, metadata, family: Family,
            indexes: dict[str, dict], models: dict[str, torch.nn.Module],
            weights: WeightStats | None = None) -> PreparedAdapter:
    """Resolve and validate every patch; raise IncompatibleLoraError without touching any model.

    A file whose denoiser part matches nothing here is refused as made for another base model, whatever
    the caller allows; one that fits only in part is reported (``check_complete`` decides). A patch whose
    change would dwarf the weight it patches is refused (``magnitude``); ``weights`` gives each module's
    weight norm and dtype (the owner caches them), by default read from ``models``."""
    meta = parse_metadata(metadata)
    found = _match(path, converted, family, indexes, models)
    where = _pipeline_text(family, models)
    made_for = _made_for_text(meta, converted)
    if found.mismatched:
        raise IncompatibleLoraError(
            path, f"does not fit this {where}: {len(found.mismatched)} layers have other shapes, "
            f"e.g. {found.mismatched[0]}.{made_for}", f"Use a LoRA made for {family.title}.")
    skipped = tuple(sorted({c for c, _, _ in found.counts if c in family.components and c not in models}))
    notes = converted.notes
    if meta.base_model in family.lookalikes:
        notes = (*notes, lookalike_note(meta, family))
    report = LoadReport(path, converted.format, tuple(sorted(found.counts)), tuple(found.unmatched),
                        converted.unknown, meta.base_model or "unknown", converted.made_for, notes, meta,
                        skipped, converted.ignored)
    denoiser = [(c, m, t) for c, m, t in found.counts if c in (family.denoiser, *DENOISERS)]
    if report.matched == 0 or (denoiser and not sum(m for _, m, _ in denoiser)):
        part = "denoiser " if report.matched else ""
        total = sum(t for _, _, t in denoiser) if report.matched else report.total
        raise IncompatibleLoraError(
            path, f"matched none of its {total} {part}modules in this {where} "
            f"(parts in the file: {', '.join(c for c, _, _ in found.counts) or 'none'}).{made_for}",
            f"Use a LoRA made for {family.title}.")
    check_magnitudes(path, found.fitted, weights or WeightStats(models, original_weight))
    return PreparedAdapter(sha256, path, found.fitted, report)


PARTIAL_ADVICE = ("Use a LoRA made for {title}, or, to load only the parts that fit, set LORADECK_ALLOW_PARTIAL=1 "
                  "(Python: Deck.add(..., allow_partial=True)).")


def lookalike_note(meta: LoraMetadata, family: Family) -> str:
    return (f"its metadata says it was made for {meta.base_model} ({meta.base_model_source}), whose module names "
            f"and shapes {family.title} shares but not its weights")


def check_complete(prepared: PreparedAdapter, family: Family, allow_partial: bool) -> None:
    """Refuse a file that would apply only in part, or that its metadata says was made for a model whose LoRAs
    look like this family's (``Family.lookalikes``), with an IncompatibleLoraError, unless the caller opted in."""
    problems = prepared.report.problems()
    if not problems:
        return
    meta = prepared.report.metadata
    if not allow_partial and meta.base_model in family.lookalikes:
        others = [p for p in problems if p != lookalike_note(meta, family)]
        also = f"; besides, {'; '.join(others)}" if others else ""
        raise IncompatibleLoraError(
            prepared.path, f"was made for {meta.base_model} ({meta.base_model_source}), not for {family.title}: the "
            f"two share module names and shapes but not weights, so it would load where it fits and change the "
            f"picture in ways its trainer never saw{also}",
            f"Use a LoRA made for {family.title}, or, to load it anyway where it fits, set LORADECK_ALLOW_PARTIAL=1 "
            "(Python: Deck.add(..., allow_partial=True)).")
    if not allow_partial:
        base = prepared.report.base_text()
        made_for = f"; its base model: {base}" if base != "unknown" else ""
        raise IncompatibleLoraError(prepared.path, f"would apply only in part to this {family.title} pipeline: "
                                    f"{'; '.join(problems)}{made_for}", PARTIAL_ADVICE.format(title=family.title))
    log.warning("%s: loaded in part, as asked: %s", prepared.path, "; ".join(problems))
