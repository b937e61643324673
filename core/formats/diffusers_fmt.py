"""diffusers / PEFT layouts: ``unet.<module>.lora_A.weight``, ``base_model.model.<module>.lora_A.weight``,
the older attention-processor form ``[unet.]<module>.processor.to_q_lora.down.weight``, and files on the
original model's names with BFL/ComfyUI's ``diffusion_model.`` prefix (``lora_A``/``lora_B`` or
``lora_down``/``lora_up`` + ``.alpha``). DiffSynth-Studio keeps peft's adapter name (``lora_A.default.weight``).
LyCORIS modules under dotted names (ai-toolkit's LoKr: ``diffusion_model.<module>.lokr_w1``; full differences
``.diff`` / ``.diff_b``) are built as kohya.py builds them, by the parts they have.

Keys without a component prefix (PEFT files, old unprefixed files) go to ``ANY_COMPONENT`` and
are matched against every component of the pipeline by ``matching``. A PEFT DoRA magnitude
(``lora_magnitude_vector``) becomes the patch's ``dora_scale``. Alphas come from ``.alpha`` keys, else the
config the file carries (diffusers' ``lora_adapter_metadata``, or a PEFT folder's ``adapter_config.json``).
"""

from __future__ import annotations

import re
from collections import Counter

from ..files import safe_json
from . import kohya
from .patch import ANY_COMPONENT, AnyPatch, ConvertedLora, ModulePatch, alpha_of, module_named
from .peft_config import ConfigError, ScaleRule, component_config, scale_rule

METADATA_KEY = "lora_adapter_metadata"  # diffusers' save_lora_weights stores the LoraConfig here
PEFT_CONFIG_KEY = "loradeck.peft_config"  # a PEFT folder's adapter_config.json, added by files.read_lora_file
PEFT_PREFIX = "base_model.model."
DENOISER_PREFIXES = ("model.diffusion_model.", "diffusion_model.")  # original-model checkpoints' naming
COMPONENT_NAMES = ("unet", "transformer", "text_encoder", "text_encoder_2", "text_encoder_3")
_PARTS = {
    ".lora_A.weight": "down", ".lora_B.weight": "up", ".lora_A.default.weight": "down",
    ".lora_B.default.weight": "up", ".alpha": "alpha", ".lora_magnitude_vector": "dora",
    ".lora_magnitude_vector.weight": "dora", ".lora_magnitude_vector.default.weight": "dora",
    ".lora.down.weight": "down", ".lora.up.weight": "up", ".lora_down.weight": "down", ".lora_up.weight": "up",
    ".lora_linear_layer.down.weight": "down", ".lora_linear_layer.up.weight": "up",
}
# LyCORIS parts (and DoRA's kohya-style name) under dotted module names: bare or with ".weight"
_LYCORIS = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t1", "lokr_t2",
            "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "diff", "diff_b", "diff_m")
_PARTS.update({f".{part}{tail}": part for part in _LYCORIS for tail in ("", ".weight")})
_PARTS.update({".dora_scale": "dora", ".dora_scale.weight": "dora"})
_SUFFIXES = sorted(_PARTS, key=len, reverse=True)  # longest first: ".lora_A.default.weight" before ".weight" forms
# processor.to_q_lora.down.weight -> to_q ; processor.to_out_lora.down.weight -> to_out.0
_PROCESSOR = re.compile(r"\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down\.weight|up\.weight|alpha)$")
_PROCESSOR_PARTS = {"down.weight": "down", "up.weight": "up", "alpha": "alpha"}
_OLD_MARKERS = (".processor.", ".lora.down.", ".lora.up.", ".lora_linear_layer.")
_ALGORITHM_PARTS = {marker for marker, _ in kohya.ALGORITHM_MARKERS}
MAX_CONFIG_CHARS = 1024 * 1024  # a LoraConfig is a few KB; target_modules lists can run to a few hundred


def is_diffusers(keys) -> bool:
    return any((split := _split(k)) is not None and (split[1] == "down" or split[1] in _ALGORITHM_PARTS
                                                      or split[1] in kohya.PARAM_PARTS) for k in keys)


def _split(key: str) -> tuple[str, str] | None:
    # "unet.a.b.lora_A.weight" -> ("unet.a.b", "down")
    match = _PROCESSOR.search(key)
    if match:
        target = "to_out.0" if match.group(1) == "to_out" else match.group(1)
        return key[: match.start()] + "." + target, _PROCESSOR_PARTS[match.group(2)]
    for suffix in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], _PARTS[suffix]
    return None


def _component(name: str, denoiser: str) -> tuple[str, str]:
    # "text_encoder_2.encoder.layers.0..." -> ("text_encoder_2", "encoder.layers.0...")
    # "diffusion_model.double_blocks.0.img_attn.qkv" -> (denoiser, "double_blocks.0.img_attn.qkv")
    name = name.removeprefix(PEFT_PREFIX)
    for prefix in DENOISER_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return denoiser, name[len(prefix):]
    head, _, rest = name.partition(".")
    return (head, rest) if head in COMPONENT_NAMES and rest else (ANY_COMPONENT, name)


def _json_object(raw, source: str) -> dict:
    try:
        value = safe_json.loads(raw, MAX_CONFIG_CHARS)
    except safe_json.UntrustedJsonError as exc:
        raise ConfigError(f"{source} cannot be read: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{source} is not a JSON object")
    return value


def _rules(metadata, components) -> dict[str, ScaleRule]:
    """component -> how to scale its modules, from the config the file carries (ConfigError if unusable)."""
    rules = {}
    if metadata.get(PEFT_CONFIG_KEY):
        rules[ANY_COMPONENT] = scale_rule(_json_object(metadata[PEFT_CONFIG_KEY], "adapter_config.json"))
    if metadata.get(METADATA_KEY):
        flat = _json_object(metadata[METADATA_KEY], METADATA_KEY)
        for component in components:
            part = component_config(flat, component)
            if part:
                rules[component] = scale_rule(part)
    return rules


def _label(keys, dora: bool, algos: set[str]) -> str:
    if any(k.startswith(PEFT_PREFIX) for k in keys):
        name = "PEFT"
    elif any(m in k for k in keys for m in _OLD_MARKERS):
        name = "diffusers (attention processors)"
    elif any(k.startswith(DENOISER_PREFIXES) for k in keys):
        name = "original names (diffusion_model.)"
    else:
        name = "diffusers"
    if algos - {"lora"}:
        name += " " + "+".join(kohya.LABELS[a] for a in kohya.LABELS if a in algos)
    return name + (" with DoRA" if dora else "")


def _group(state_dict, denoiser: str):
    parts: dict[tuple[str, str], dict] = {}
    ignored = []
    for key, tensor in state_dict.items():
        split = _split(key)
        if split is None:
            ignored.append(key)
            continue
        name, part = split
        found = parts.setdefault(_component(name, denoiser), {"__keys__": {}})
        found[part] = tensor
        found["__keys__"][part] = key
    return parts, ignored


def convert_diffusers(state_dict, metadata, family) -> ConvertedLora:
    """Pure: diffusers/PEFT state dict -> patches per component (unprefixed keys: ``ANY_COMPONENT``).
    Raises ConfigError when the config the file carries cannot be used."""
    parts, ignored = _group(state_dict, family.denoiser)
    rules = _rules(metadata, {c for c, _ in parts})
    patches: dict[str, dict[str, AnyPatch]] = {}
    algos, skipped = set(), Counter()
    for (component, name), p in parts.items():
        keys = p.pop("__keys__")
        with module_named(name):
            algo, patch = _lora(p, rules.get(component), name) if "down" in p else _lycoris(p)
            extra = kohya.param_deltas(p)
        skipped.update([kind] if (kind := kohya.skipped_kind(p, patch)) else [])
        if patch is None and not extra:
            ignored.extend(keys.values())
            continue
        used = kohya.used_parts(algo if patch is not None else "", p) | (USED_LORA if algo == "lora" else set())
        ignored.extend(key for part, key in keys.items() if _KOHYA_NAMES.get(part, part) not in used
                       and part not in used)
        algos.update([algo] if patch is not None else ["full"])
        found = patches.setdefault(component, {})
        if patch is not None:
            found[name] = patch
        found.update({f"{name}.{param}": delta for param, delta in extra.items()})
    dora = any(p.dora_scale is not None for c in patches.values() for p in c.values())
    return ConvertedLora(_label(state_dict.keys(), dora, algos), patches, tuple(sorted(ignored)),
                         notes=kohya.unsupported_notes(skipped))


USED_LORA = {"down", "up", "alpha", "dora"}
_KOHYA_NAMES = {"dora": "dora_scale"}  # this layout's name for a part -> kohya.USED_PARTS' name


def _lora(p, rule: ScaleRule | None, name: str) -> tuple[str, ModulePatch | None]:
    if "up" not in p:
        return "lora", None
    alpha = alpha_of(p) if "alpha" in p else (rule.alpha(name, int(p["down"].shape[0])) if rule else None)
    return "lora", ModulePatch(down=p["down"], up=p["up"], alpha=alpha, dora_scale=p.get("dora"))


def _lycoris(p) -> tuple[str, AnyPatch | None]:
    """A LyCORIS module (LoKr, LoHa, full difference) under a dotted name, built by kohya.py's builders."""
    return kohya.build({("dora_scale" if part == "dora" else part): t for part, t in p.items()})
