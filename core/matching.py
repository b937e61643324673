"""Matching a converted file against a live pipeline's modules, before anything changes.

``prepare`` finds each patch's real module, checks every shape and value, and returns an
immutable ``PreparedAdapter`` with its load report. Only then may the model be touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from .errors import IncompatibleLoraError, LoraFileError
from .families import Family
from .formats import ANY_COMPONENT, ConvertedLora, ModulePatch
from .formats.dora import axis_of, dora_delta
from .formats.lycoris import dense_patch
from .fusion import ORIGINAL
from .load_report import LoadReport
from .metadata import LoraMetadata, parse_metadata

log = logging.getLogger(__name__)

PATCHABLE = (torch.nn.Linear, torch.nn.Conv2d)
# transformers 4 CLIP text models nest everything under ``text_model``; transformers 5 does not,
# while real kohya/diffusers files still name ``text_model``. Both spellings resolve.
LEGACY_PREFIXES = ("text_model.",)
# How a pipeline's component describes its width, for "which pipeline it met" in errors.
WIDTH_ATTRIBUTES = (("cross_attention_dim", "cross-attention width"), ("hidden_size", "width"))


def module_index(model: torch.nn.Module, extra_aliases=None) -> dict[str, str]:
    """Alias -> real module name for every patchable module (peft wrappers count as their base).

    ``extra_aliases(name)`` may add family-specific spellings (e.g. SDXL's original-model block
    names that kohya files use); each alias also resolves in kohya's flattened ``_`` form.
    """
    index: dict[str, str] = {}
    skip: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(s) for s in skip):
            continue
        if isinstance(module, BaseTunerLayer):
            skip.append(name + ".")
            module = module.get_base_layer()
        if not isinstance(module, PATCHABLE):
            continue
        extra = tuple(extra_aliases(name)) if extra_aliases is not None else ()
        legacy = tuple(p + name for p in LEGACY_PREFIXES)
        legacy += tuple(name[len(p):] for p in LEGACY_PREFIXES if name.startswith(p))
        for alias in (name, *legacy, *extra):
            index.setdefault(alias, name)
            index.setdefault(alias.replace(".", "_"), name)
    return index


def base_layer(model: torch.nn.Module, name: str) -> torch.nn.Module:
    module = model.get_submodule(name)
    return module.get_base_layer() if isinstance(module, BaseTunerLayer) else module


def original_weight(model: torch.nn.Module, name: str) -> torch.Tensor:
    """The module's base weight as loaded (the kept original while a fused adapter is baked in)."""
    kept = getattr(model.get_submodule(name), ORIGINAL, None)
    return kept if kept is not None else base_layer(model, name).weight


@dataclass(frozen=True)
class PreparedAdapter:
    """A file resolved against one pipeline: real module name -> patch, per component."""

    sha256: str
    path: str
    patches: dict[str, dict[str, ModulePatch]]
    report: LoadReport


def _fit_shapes(patch: ModulePatch, module: torch.nn.Module) -> ModulePatch | str:
    """The pair reshaped to the module's layout, or a description of the mismatch."""
    down, up = patch.down, patch.up
    if isinstance(module, torch.nn.Linear):
        down = down.flatten(1) if down.dim() == 4 and down.shape[2:] == (1, 1) else down
        up = up.flatten(1) if up.dim() == 4 and up.shape[2:] == (1, 1) else up
        want_down, want_up = (patch.rank, module.in_features), (module.out_features, patch.rank)
    else:
        want_down = (patch.rank, module.in_channels // module.groups, *module.kernel_size)
        want_up = (module.out_channels, patch.rank, 1, 1)
        # a flattened kernel [rank, in*kh*kw] (LoHa/LoKr factors, dense pairs) takes the layer's kernel
        down = down.reshape(want_down) if down.dim() == 2 and down.numel() == torch.Size(want_down).numel() else down
        up = up[:, :, None, None] if up.dim() == 2 else up
    if tuple(down.shape) != want_down or tuple(up.shape) != want_up:
        return f"down {tuple(patch.down.shape)} up {tuple(patch.up.shape)} vs layer needs {want_down} / {want_up}"
    return replace(patch, down=down, up=up)


def _low_rank_delta(patch: ModulePatch, shape) -> torch.Tensor:
    return (patch.up.float().flatten(1) @ patch.down.float().flatten(1)).reshape(shape) * patch.scale


def _fit(patch: ModulePatch, module: torch.nn.Module, weight: torch.Tensor) -> ModulePatch | str:
    """Shapes fitted to the layer; a DoRA patch becomes its exact delta against ``weight``."""
    fitted = _fit_shapes(patch, module)
    if isinstance(fitted, str) or patch.dora_scale is None:
        return fitted
    if axis_of(patch.dora_scale, weight) is None:
        return f"DoRA magnitude {tuple(patch.dora_scale.shape)} vs layer weight {tuple(weight.shape)}"
    delta = dora_delta(weight, _low_rank_delta(fitted, weight.shape), patch.dora_scale)
    # a dense delta is as big as the layer: keep it in the layer's dtype (peft would cast it there anyway)
    return _fit_shapes(dense_patch(delta.to(weight.dtype) if weight.is_floating_point() else delta), module)


def _finite(tensor: torch.Tensor) -> bool:
    """Whether every value is finite. Any NaN/inf makes the sum non-finite, so a finite sum proves it
    in one reduction; only a non-finite sum (NaN, or a huge bf16/fp32 tensor overflowing) is checked
    element by element. Thousands of elementwise checks made loads crawl on a busy CPU."""
    if torch.isfinite(tensor.sum(dtype=torch.float64 if tensor.dtype == torch.float64 else torch.float32)):
        return True
    return bool(torch.isfinite(tensor).all())


def _check_finite(path: str, converted: ConvertedLora) -> None:
    for component, patches in converted.patches.items():
        for name, patch in patches.items():
            if not all(_finite(t) for t in patch.tensors()):
                raise LoraFileError(path, f"contains NaN or infinite values in {component} module {name}",
                                    "The file is damaged or was saved from a diverged training run; do not use it.")
            if patch.alpha is not None and not torch.isfinite(torch.tensor(patch.alpha)):
                raise LoraFileError(path, f"has a non-finite alpha for {component} module {name}", "Re-export it.")


def _home(name: str, patch: ModulePatch, family: Family, indexes, models) -> str:
    """The component an unprefixed module belongs to: the first whose layer has that name and fits."""
    having = [c for c in family.components if c in indexes and name in indexes[c]]
    for component in having:
        real = indexes[component][name]
        if not isinstance(_fit_shapes(patch, base_layer(models[component], real)), str):
            return component
    return having[0] if having else family.denoiser


def _by_component(converted: ConvertedLora, family: Family, indexes, models) -> dict[str, dict[str, ModulePatch]]:
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


def _match(converted, family, indexes, models):
    """(fitted patches, per-component counts, unmatched names, shape mismatches)."""
    fitted: dict[str, dict[str, ModulePatch]] = {}
    counts, unmatched, mismatched = [], [], []
    for component, patches in _by_component(converted, family, indexes, models).items():
        index, matched = indexes.get(component), 0
        for name, patch in patches.items():
            real = index.get(name) if index is not None else None
            if real is None:
                unmatched.append(f"{component}:{name}")
                continue
            model = models[component]
            fit = _fit(patch, base_layer(model, real), original_weight(model, real))
            if isinstance(fit, str):
                mismatched.append(f"{component}.{real}: {fit}")
                continue
            fitted.setdefault(component, {})[real] = fit
            matched += 1
        counts.append((component, matched, len(patches)))
    return fitted, tuple(sorted(counts)), tuple(unmatched), mismatched


def prepare(path: str, sha256: str, converted: ConvertedLora, metadata, family: Family,
            indexes: dict[str, dict[str, str]], models: dict[str, torch.nn.Module]) -> PreparedAdapter:
    """Resolve and validate every patch; raise IncompatibleLoraError without touching any model."""
    _check_finite(path, converted)
    meta = parse_metadata(metadata)
    fitted, counts, unmatched, mismatched = _match(converted, family, indexes, models)
    where = _pipeline_text(family, models)
    made_for = _made_for_text(meta, converted)
    if mismatched:
        raise IncompatibleLoraError(
            path, f"does not fit this {where}: {len(mismatched)} layers have other shapes, "
            f"e.g. {mismatched[0]}.{made_for}", f"Use a LoRA made for {family.title}.")
    report = LoadReport(path, converted.format, counts, unmatched, len(converted.ignored),
                        meta.base_model or "unknown", converted.made_for, converted.notes, meta)
    if report.matched == 0:
        raise IncompatibleLoraError(
            path, f"matched none of its {report.total} modules in this {where} "
            f"(components in the file: {', '.join(c for c, _, _ in counts)}).{made_for}",
            f"Use a LoRA made for {family.title}.")
    if report.partial:
        log.warning("%s: %s", path, "; ".join(report.warnings()))
    return PreparedAdapter(sha256, path, fitted, report)
