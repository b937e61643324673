"""kohya-ss / A1111 / LyCORIS files: ``lora_unet_<flat_module>.<part>`` and friends.

Module names are the model's dotted names with ``.`` replaced by ``_``; they are resolved
against the real model later (see ``resolve.py``), which is the only exact way to undo that.
Each module picks its algorithm by the parts it has (as the reference loader does), so files
that mix LoRA, LoCon, LoHa and LoKr modules load too.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

from . import lycoris
from .lowrank import tucker_factor
from .patch import AnyPatch, ConvertedLora, LazyPatch, ModulePatch, ParamDelta, alpha_of, module_named

# The part that identifies a module's algorithm -> algorithm (first match wins).
ALGORITHM_MARKERS = (
    ("lora_down", "lora"),
    ("hada_w1_a", "loha"),
    ("lokr_w1", "lokr"),
    ("lokr_w1_a", "lokr"),
    ("lokr_w2", "lokr"),
    ("lokr_w2_a", "lokr"),
    ("diff", "full"),
)
# Algorithms LoRA Deck recognises but cannot apply as a weight delta on a Linear/Conv layer.
UNSUPPORTED_MARKERS = {"oft_blocks": "OFT/BOFT", "oft_diag": "OFT", "a1": "GLoRA", "w_norm": "norm-layer",
                       "on_input": "(IA)^3"}
DETECT_PARTS = ("lora_down", "hada_w1_a", "lokr_w1", "lokr_w1_a", "lokr_w2", "lokr_w2_a", "diff", "diff_b",
                "diff_m", *UNSUPPORTED_MARKERS)
LABELS = {"lora": "LoRA", "locon": "LoCon", "loha": "LoHa", "lokr": "LoKr", "full": "full"}


# Prefixes any kohya-style file may use, whatever pipeline it meets. A family's own table (families.py) wins;
# these name the component a file meant, so a part for a component this family lacks (lora_te2_ on SD 1.x)
# is reported as such instead of being dropped. SimpleTuner's LyCORIS files prefix the denoiser "lycoris_".
KNOWN_PREFIXES = (("lora_unet_", "unet"), ("lycoris_", "unet"), ("lora_te_", "text_encoder"),
                  ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2"), ("lora_te3_", "text_encoder_3"))


def with_known(prefixes) -> tuple[tuple[str, str], ...]:
    """The family's prefixes, then the known ones it does not define; longest first."""
    denoiser = dict(prefixes).get("lora_unet_", "unet")
    table = {p: (denoiser if c == "unet" else c) for p, c in KNOWN_PREFIXES}
    table.update(dict(prefixes))
    return tuple(sorted(table.items(), key=lambda p: -len(p[0])))


def _split(key: str, prefixes) -> tuple[str, str, str] | None:
    # "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight" -> (component, flat name, "lora_down")
    stem, _, part = key.partition(".")
    if not part:
        return None
    part = part.removesuffix(".weight")
    for prefix, component in prefixes:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return component, stem[len(prefix) :], part
    return None


def is_kohya(keys, prefixes) -> bool:
    prefixes = with_known(prefixes)
    return any(s is not None and s[2] in DETECT_PARTS for s in (_split(k, prefixes) for k in keys))


def lora_patch(parts) -> AnyPatch | None:
    """LoRA / LoCon: ``up @ down * alpha / rank``; a ``lora_mid`` Tucker core folds into ``down`` (lazily: its
    size depends on the core's kernel, known before it is built)."""
    down, up, mid = parts.get("lora_down"), parts.get("lora_up"), parts.get("lora_mid")
    if down is None or up is None:
        return None
    if mid is None:
        return ModulePatch(down=down, up=up, alpha=alpha_of(parts))
    plain_up = up.flatten(1) if up.dim() == 4 and tuple(up.shape[2:]) == (1, 1) else up
    alpha = alpha_of(parts)
    factor = tucker_factor(plain_up, mid, down, "lora_up/lora_mid/lora_down")
    return LazyPatch(factor, 1.0 if alpha is None else alpha / factor.rank)


BUILDERS = {"lora": lora_patch, "loha": lycoris.loha_patch, "lokr": lycoris.lokr_patch, "full": lycoris.full_patch}
_COMMON = ("alpha", "dora_scale")
USED_PARTS = {  # what each builder reads; any other part of such a module is reported as not understood
    "lora": {"lora_down", "lora_up", "lora_mid", *_COMMON},
    "locon": {"lora_down", "lora_up", "lora_mid", *_COMMON},
    "loha": {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", *_COMMON},
    "lokr": {"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2", *_COMMON},
    "full": {"diff", *_COMMON},
}
# Parts any module may carry besides its algorithm's: whole differences of a parameter (``ParamDelta``s keyed
# ``<module>.<param>``): the bias, a modulation table (lightx2v's Wan files), a 1-D weight (a norm)
PARAM_PARTS = {"diff_b": "bias", "diff_m": "modulation"}


def param_deltas(parts) -> dict[str, ParamDelta]:
    """param -> its difference, for the parts of one module that are whole parameter differences."""
    found = {param: ParamDelta(parts[part], param) for part, param in PARAM_PARTS.items() if part in parts}
    diff = parts.get("diff")
    if diff is not None and diff.dim() < 2:
        found["weight"] = ParamDelta(diff, "weight")
    return found


def used_parts(algo: str, parts) -> set[str]:
    """The parts of a module of ``algo`` ("" when only parameter differences) that its patches use."""
    used = set(USED_PARTS.get(algo, ())) | {p for p in PARAM_PARTS if p in parts}
    return used | ({"diff"} if "diff" in parts and parts["diff"].dim() < 2 else set())


def algorithm_of(parts) -> str | None:
    return next((algo for marker, algo in ALGORITHM_MARKERS if marker in parts), None)


def group(state_dict, prefixes) -> tuple[dict[tuple[str, str], dict], list[str]]:
    """(component, flat module name) -> {part: tensor}, and the keys that fit no module. Each module also keeps
    ``"__keys__"``: its parts' raw keys (for the report)."""
    prefixes = with_known(prefixes)
    modules: dict[tuple[str, str], dict] = {}
    ignored = []
    for key, tensor in state_dict.items():
        split = _split(key, prefixes)
        if split is None:
            ignored.append(key)
            continue
        component, name, part = split
        found = modules.setdefault((component, name), {"__keys__": {}})
        found[part] = tensor
        found["__keys__"][part] = key
    return modules, ignored


def build(parts) -> tuple[str, AnyPatch | None]:
    algo = algorithm_of(parts)
    patch = BUILDERS[algo](parts) if algo else None
    if patch is not None and parts.get("dora_scale") is not None:
        patch = replace(patch, dora_scale=parts["dora_scale"])
    if algo == "lora" and patch is not None and math.prod(patch.kernel) > 1:
        algo = "locon"
    return algo or "", patch


def _label(algos: set[str], dora: bool) -> str:
    names = "+".join(LABELS[a] for a in LABELS if a in algos) or "LoRA"
    family = "kohya" if algos <= {"lora", "locon"} else "LyCORIS"
    return f"{family} {names}" + (" with DoRA" if dora else "")


def unsupported_notes(skipped: dict[str, int]) -> tuple[str, ...]:
    return tuple(f"{n} {kind} module{'s' if n > 1 else ''} skipped: LoRA Deck cannot apply {kind} yet"
                 for kind, n in sorted(skipped.items()))


def skipped_kind(parts, patch: AnyPatch | None) -> str | None:
    """The kind of change a module asks for that LoRA Deck leaves out (None: nothing left out)."""
    if patch is None:
        return next((kind for marker, kind in UNSUPPORTED_MARKERS.items() if marker in parts), None)
    return None


def convert_kohya(state_dict, prefixes) -> ConvertedLora:
    """Pure: kohya/LyCORIS state dict -> patches per component. ``prefixes`` maps key prefix -> component."""
    modules, ignored = group(state_dict, prefixes)
    patches: dict[str, dict[str, AnyPatch]] = {}
    algos, skipped = set(), Counter()
    for (component, name), parts in modules.items():
        keys = parts.pop("__keys__")
        with module_named(name):
            algo, patch = build(parts)
            extra = param_deltas(parts)
        skipped.update([kind] if (kind := skipped_kind(parts, patch)) else [])
        if patch is None and not extra:
            ignored.extend(keys.values())
            continue
        ignored.extend(key for part, key in keys.items() if part not in used_parts(algo if patch else "", parts))
        algos.update([algo] if patch is not None else ["full"])
        found = patches.setdefault(component, {})
        if patch is not None:
            found[name] = patch
        found.update({f"{name}.{param}": delta for param, delta in extra.items()})
    dora = any(p.dora_scale is not None for found in patches.values() for p in found.values())
    return ConvertedLora(_label(algos, dora), patches, tuple(sorted(ignored)), notes=unsupported_notes(skipped))
