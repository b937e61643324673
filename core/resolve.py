"""Matching a converted file against a live pipeline, before anything changes.

``prepare`` resolves each patch to a real module, checks every shape and value, and returns
an immutable ``PreparedAdapter`` plus a load report. Only then may the model be touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from .errors import IncompatibleLoraError, LoraFileError
from .families import Family
from .formats import ConvertedLora, ModulePatch

PATCHABLE = (torch.nn.Linear, torch.nn.Conv2d)
# transformers 4 CLIP text models nest everything under ``text_model``; transformers 5 does not,
# while real kohya/diffusers files still name ``text_model``. Both spellings resolve.
LEGACY_PREFIXES = ("text_model.",)
BASE_MODEL_KEYS = ("modelspec.architecture", "ss_base_model_version", "ss_sd_model_name", "baseModel")


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


@dataclass(frozen=True)
class LoadReport:
    """What a file matched: per component (name, matched, total in file), and where it fell short."""

    file: str
    format: str
    components: tuple[tuple[str, int, int], ...]
    unmatched: tuple[str, ...]
    ignored_keys: int
    base_model: str

    @property
    def matched(self) -> int:
        return sum(m for _, m, _ in self.components)

    @property
    def total(self) -> int:
        return sum(t for _, _, t in self.components)

    @property
    def partial(self) -> bool:
        return self.matched < self.total or self.ignored_keys > 0

    def text(self) -> str:
        parts = ", ".join(f"{c} {m}/{t}" for c, m, t in self.components)
        line = f"{self.format} LoRA: {self.matched}/{self.total} modules matched ({parts})"
        if self.unmatched:
            line += f"; not found: {', '.join(self.unmatched[:3])}" + (" ..." if len(self.unmatched) > 3 else "")
        if self.ignored_keys:
            line += f"; {self.ignored_keys} keys not understood"
        return line

    def to_dict(self) -> dict:
        return {"format": self.format, "matched": self.matched, "total": self.total,
                "components": [{"component": c, "matched": m, "total": t} for c, m, t in self.components],
                "unmatched": list(self.unmatched[:20]), "ignored_keys": self.ignored_keys,
                "base_model": self.base_model}


@dataclass(frozen=True)
class PreparedAdapter:
    """A file resolved against one pipeline: real module name -> patch, per component."""

    sha256: str
    path: str
    patches: dict[str, dict[str, ModulePatch]]
    report: LoadReport


def guess_base_model(metadata) -> str:
    for key in BASE_MODEL_KEYS:
        if metadata.get(key):
            return str(metadata[key])
    return "unknown"


def _fit(patch: ModulePatch, module: torch.nn.Module) -> ModulePatch | str:
    """The patch reshaped to the module's layout, or a description of the mismatch."""
    down, up = patch.down, patch.up
    if isinstance(module, torch.nn.Linear):
        down = down.flatten(1) if down.dim() == 4 and down.shape[2:] == (1, 1) else down
        up = up.flatten(1) if up.dim() == 4 and up.shape[2:] == (1, 1) else up
        want_down, want_up = (patch.rank, module.in_features), (module.out_features, patch.rank)
    else:
        kernel = tuple(module.kernel_size)
        down = down[:, :, None, None] if down.dim() == 2 and kernel == (1, 1) else down
        up = up[:, :, None, None] if up.dim() == 2 else up
        want_down = (patch.rank, module.in_channels // module.groups, *kernel)
        want_up = (module.out_channels, patch.rank, 1, 1)
    if tuple(down.shape) != want_down or tuple(up.shape) != want_up:
        return f"down {tuple(patch.down.shape)} up {tuple(patch.up.shape)} vs layer needs {want_down} / {want_up}"
    return ModulePatch(down=down, up=up, alpha=patch.alpha)


def _check_finite(path: str, converted: ConvertedLora) -> None:
    for component, patches in converted.patches.items():
        for name, patch in patches.items():
            if not (torch.isfinite(patch.down).all() and torch.isfinite(patch.up).all()):
                raise LoraFileError(path, f"contains NaN or infinite values in {component} module {name}",
                                    "The file is damaged or was saved from a diverged training run; do not use it.")
            if patch.alpha is not None and not torch.isfinite(torch.tensor(patch.alpha)):
                raise LoraFileError(path, f"has a non-finite alpha for {component} module {name}", "Re-export it.")


def prepare(path: str, sha256: str, converted: ConvertedLora, metadata, family: Family,
            indexes: dict[str, dict[str, str]], models: dict[str, torch.nn.Module]) -> PreparedAdapter:
    """Resolve and validate every patch; raise IncompatibleLoraError without touching any model."""
    _check_finite(path, converted)
    base = guess_base_model(metadata)
    fitted: dict[str, dict[str, ModulePatch]] = {}
    counts, unmatched, mismatched = [], [], []
    for component, patches in converted.patches.items():
        index = indexes.get(component)
        matched = 0
        for name, patch in patches.items():
            real = index.get(name) if index is not None else None
            if real is None:
                unmatched.append(f"{component}:{name}")
                continue
            fit = _fit(patch, base_layer(models[component], real))
            if isinstance(fit, str):
                mismatched.append(f"{component}.{real}: {fit}")
                continue
            fitted.setdefault(component, {})[real] = fit
            matched += 1
        counts.append((component, matched, len(patches)))
    made_for = "" if base == "unknown" else f" It says it was made for {base!r}."
    if mismatched:
        raise IncompatibleLoraError(
            path, f"does not fit this {family.title} pipeline: {len(mismatched)} layers have other shapes, "
            f"e.g. {mismatched[0]}.{made_for}", "Use a LoRA made for this base model.")
    report = LoadReport(path, converted.format, tuple(sorted(counts)), tuple(unmatched),
                        len(converted.ignored), base)
    if report.matched == 0:
        raise IncompatibleLoraError(
            path, f"matched none of its {report.total} modules in this {family.title} pipeline "
            f"(components in the file: {', '.join(converted.patches)}).{made_for}",
            "Use a LoRA made for this base model.")
    return PreparedAdapter(sha256, path, fitted, report)


def report_json(report: LoadReport) -> str:
    return json.dumps(report.to_dict())
