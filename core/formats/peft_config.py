"""PEFT's LoraConfig as LoRA files carry it: a PEFT folder's ``adapter_config.json``, or the per-component copy
diffusers writes into a file's ``lora_adapter_metadata`` header. Read as untrusted data.

What decides a module's scale (peft ``LoraLayer.update_layer``): ``lora_alpha / r`` (``/ sqrt(r)`` with
``use_rslora``), where ``alpha_pattern`` may give a module its own alpha. The rank comes from the tensors
themselves (``rank_pattern`` only says what they already show). Pattern keys are module-name suffixes, matched
the way peft matches them (``(.*\\.)?key$``) — but literally: a key using regular-expression syntax is refused,
never run, because a pattern from a stranger's file could take minutes to match. The one exception is the
exact-name form LoRA Deck itself writes (``(?<![\\w.])`` + an escaped module name, see ``peft_ops.exact_pattern``),
which is read as that one name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_PATTERNS = 10_000
MAX_KEY = 500
_LITERAL = re.compile(r"^[A-Za-z0-9_.\-]+$")
EXACT_PREFIX = r"(?<![\w.])"  # what peft_ops.exact_pattern puts before an escaped module name
# Fields that change what the saved tensors mean in ways LoRA Deck does not apply: refused, not ignored.
UNSUPPORTED = {"fan_in_fan_out": (False, None), "use_qalora": (False, None), "lora_bias": (False, None),
               "layer_replication": (None,)}


class ConfigError(ValueError):
    """A config value LoRA Deck cannot use; the message says which field and why."""


@dataclass(frozen=True)
class ScaleRule:
    """How to scale each module of one adapter: alpha per module name, and whether rsLoRA applies."""

    lora_alpha: float | None = None  # None: the file did not say (alpha = rank, scale 1)
    alpha_pattern: tuple[tuple[str, bool, float], ...] = ()  # (module name, whole name only?, alpha)
    use_rslora: bool = False

    def alpha(self, module: str, rank: int) -> float | None:
        """The ``ModulePatch.alpha`` (alpha such that alpha / rank is the scale) for ``module``, or None."""
        alpha = next((value for key, whole, value in self.alpha_pattern if _matches(key, whole, module)),
                     self.lora_alpha)
        if alpha is None:
            return None
        return alpha * math.sqrt(rank) if self.use_rslora else alpha


def _matches(key: str, whole: bool, module: str) -> bool:
    return module == key or (not whole and module.endswith("." + key))


def _pattern_key(key, field: str) -> tuple[str, bool]:
    """(module name, whole name only?) for a pattern key; ConfigError for anything but a plain name."""
    whole = isinstance(key, str) and key.startswith(EXACT_PREFIX)
    name = key[len(EXACT_PREFIX):].replace("\\.", ".").replace("\\-", "-") if whole else key
    if not isinstance(name, str) or not 0 < len(name) <= MAX_KEY or not _LITERAL.match(name):
        raise ConfigError(f"{field} key {str(key)[:60]!r} is not a plain module name (LoRA Deck matches pattern "
                          "keys literally, as module-name suffixes, and never runs a regular expression)")
    return name, whole


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value == 0:
        raise ConfigError(f"{field} must be a finite non-zero number, got {str(value)[:40]!r}")
    if abs(value) > 1e6:
        raise ConfigError(f"{field} = {value:g} is beyond any LoRA's alpha")
    return float(value)


def _patterns(value, field: str) -> tuple[tuple[str, bool, float], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or len(value) > MAX_PATTERNS:
        raise ConfigError(f"{field} must be a mapping of at most {MAX_PATTERNS} module names")
    return tuple((*_pattern_key(key, field), _number(number, f"{field}[{str(key)[:60]!r}]"))
                 for key, number in value.items())


def scale_rule(config: Mapping) -> ScaleRule:
    """A validated ScaleRule from a LoraConfig-like mapping; ConfigError names the bad field."""
    if not isinstance(config, Mapping):
        raise ConfigError("the LoRA config is not a JSON object")
    for field, allowed in UNSUPPORTED.items():
        if field in config and config[field] not in allowed:
            raise ConfigError(f"{field} = {str(config[field])[:40]!r} is not supported")
    for field in ("use_rslora", "use_dora"):
        if field in config and not isinstance(config[field], bool):
            raise ConfigError(f"{field} must be true or false")
    alpha = config.get("lora_alpha")
    return ScaleRule(None if alpha is None else _number(alpha, "lora_alpha"),
                     _patterns(config.get("alpha_pattern"), "alpha_pattern"), bool(config.get("use_rslora", False)))


def component_config(flat: Mapping, component: str) -> dict:
    """diffusers' ``lora_adapter_metadata`` keeps one flat dict (``unet.lora_alpha``...): one component's part."""
    prefix = component + "."
    return {k[len(prefix):]: v for k, v in flat.items() if isinstance(k, str) and k.startswith(prefix)}
