"""The component configs a single file is built with, and where each value came from.

For an architecture whose row has a ``derive`` hook, each config value comes from, in order of precedence:

1. the weights: what the family's hook reads off the denoiser's shapes (depth, widths, heads, input channels);
2. a diffusers folder of the same pipeline class named in ``config_folders`` whose denoiser config agrees with
   every value the weights gave (the first such folder; a FLUX.1 dev folder is not used for a file with other
   depth, nor a schnell folder for a file with guidance);
3. the shipped config folder of the nearest architecture (``core/families/<family>/configs/<arch>/``).

The shapes also state what the other parts must be (a T5 as wide as ``txt_in``, a VAE with as many latent
channels as the packed input): a config that disagrees is refused naming the value, where it came from and what
the weights say. Rows without the hook use their shipped folder as it is. When a value changes, the configs are
written to a temporary folder for the build (diffusers reads configs from folders) and removed after it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace

from ..files import safe_json
from .arch import Arch, ConfigMismatch, Header, denoiser_shapes

MAX_CONFIG_BYTES = 1024 * 1024


@dataclass
class Configs:
    """The configs of one load: ``arch`` points at the folder the build reads; ``sources`` says, per component
    and key, where a value came from when it is not the shipped config."""

    arch: Arch
    shipped: str  # "the shipped FLUX.1 dev config"
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    folder: str | None = None
    temp: str | None = None

    def source(self, component: str, key: str) -> str:
        return self.sources.get(component, {}).get(key, self.shipped)

    def cleanup(self) -> None:
        if self.temp:
            shutil.rmtree(self.temp, ignore_errors=True)
            self.temp = None


def _files(config_dir: str) -> dict[str, str]:
    """component -> its config file, relative to the folder."""
    with open(os.path.join(config_dir, "model_index.json"), encoding="utf-8") as f:
        index = json.load(f)
    found = {}
    for name, spec in index.items():
        if isinstance(spec, list) and spec and spec[0] is not None:
            rel = os.path.join(name, "scheduler_config.json" if name == "scheduler" else "config.json")
            if os.path.isfile(os.path.join(config_dir, rel)):
                found[name] = rel
    return found


def _read(path: str) -> dict | None:
    """A config file from a user's folder (bounded JSON), or None when it is not a readable object."""
    try:
        with open(path, "rb") as f:
            value = safe_json.loads(f.read(MAX_CONFIG_BYTES + 1), MAX_CONFIG_BYTES)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _shipped(path: str) -> dict:
    """A shipped config file (the pack's own): read as diffusers reads it, so values such as a scheduler's
    ``lambda_min_clipped: -Infinity`` (Sana's DPM-Solver), which the bounded reader of users' files refuses, survive."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _same(a, b) -> bool:
    """Config values equal as diffusers reads them: lists and tuples alike, a missing list the same as an empty one."""
    if a is None and isinstance(b, (list, tuple)):
        a = []
    if b is None and isinstance(a, (list, tuple)):
        b = []
    return list(a) == list(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b


def _folder(config_folders, pipeline_class: str, denoiser: str, values: dict, files: dict) -> tuple[str, dict]:
    """The first config folder of ``pipeline_class`` whose denoiser config agrees with ``values``, and its configs."""
    for folder in config_folders:
        index = _read(os.path.join(folder, "model_index.json"))
        if not index or index.get("_class_name") != pipeline_class:
            continue
        configs = {c: v for c, rel in files.items() if (v := _read(os.path.join(folder, rel))) is not None}
        own = configs.get(denoiser, {})
        if all(k not in own or _same(own[k], v) for k, (v, _) in values.items()):
            return folder, configs
    return "", {}


def resolve(arch: Arch, header: Header, config_folders=(), not_denoiser: tuple[str, ...] = ()) -> Configs:
    """The configs ``header``'s file is built with (see the module docstring). Raises ConfigMismatch."""
    shipped = f"the shipped {arch.title} config"
    if arch.derive is None:
        return Configs(arch, shipped)
    files = _files(arch.config_dir)
    configs = {c: _shipped(os.path.join(arch.config_dir, rel)) for c, rel in files.items()}
    with open(os.path.join(arch.config_dir, "model_index.json"), encoding="utf-8") as f:
        index = json.load(f)
    denoiser = "unet" if "unet" in index else "transformer"
    derived = _derive(arch, denoiser_shapes(header, not_denoiser))
    result = Configs(arch, shipped)
    folder, found = _folder(config_folders, index["_class_name"], denoiser, derived.get(denoiser, {}), files)
    for component, values in found.items():
        configs[component].update(values)
        result.sources[component] = {k: f"the config folder {folder!r}" for k in values}
    result.folder = folder or None
    changed = {}
    for key, (value, evidence) in derived.get(denoiser, {}).items():
        if not _same(configs[denoiser].get(key), value):
            changed[key] = value
        configs[denoiser][key] = value
        result.sources.setdefault(denoiser, {})[key] = f"the denoiser's {evidence}"
    _requirements(derived, denoiser, configs, result)
    if arch.check is not None:  # what the shapes cannot tell, checked against them (e.g. RoPE axes vs head width)
        arch.check(copy.deepcopy(configs), result.source)
    if not changed and not found:
        return result
    result.temp = tempfile.mkdtemp(prefix="loradeck-configs-")
    _write(result.temp, arch.config_dir, files, configs)
    title = f"{arch.title} architecture ({', '.join(f'{k} {v}' for k, v in changed.items())})" if changed \
        else arch.title
    result.arch = replace(arch, configs=result.temp, key="configs", title=title)
    return result


def _derive(arch: Arch, shapes: dict) -> dict:
    """The family's hook on the file's shapes; a key it needs that is not there, or a shape of another rank, is a
    ConfigMismatch naming it (a file with the markers but not the rest of the model)."""
    try:
        return arch.derive(shapes)
    except ConfigMismatch:
        raise
    except KeyError as exc:
        raise ConfigMismatch(f"its denoiser lacks {exc.args[0]}, which a {arch.title} denoiser has: the file is "
                             "incomplete or another model") from None
    except (ValueError, TypeError, IndexError) as exc:
        raise ConfigMismatch(f"its denoiser's shapes are not those of a {arch.title} denoiser ({exc})") from None


def _requirements(derived: dict, denoiser: str, configs: dict, result: Configs) -> None:
    for component, values in derived.items():
        if component == denoiser or component not in configs:  # a part this pipeline has not (tiny SD3's T5)
            continue
        for key, (value, evidence) in values.items():
            have = configs.get(component, {}).get(key)
            if _same(have, value):
                result.sources.setdefault(component, {})[key] = f"the denoiser's {evidence}"
            else:
                raise ConfigMismatch(
                    f"its denoiser needs {component} with {key} {value} ({evidence}), but "
                    f"{result.source(component, key)} has {key} {have}: the shapes cannot tell the rest of that "
                    "part's config; name a diffusers folder of this model in config_folders (models/diffusers)")


def _write(folder: str, shipped_dir: str, files: dict, configs: dict) -> None:
    target = os.path.join(folder, "configs")
    os.makedirs(target)
    shutil.copyfile(os.path.join(shipped_dir, "model_index.json"), os.path.join(target, "model_index.json"))
    for component, rel in files.items():
        os.makedirs(os.path.join(target, component), exist_ok=True)
        with open(os.path.join(target, rel), "w", encoding="utf-8") as f:
            json.dump(configs[component], f, indent=2, sort_keys=True)
