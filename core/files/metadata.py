"""What a LoRA file says about itself, read from its safetensors header (no tensors loaded).

Sources, by trainer: kohya-ss ``ss_*`` (base model version, network module/dim/alpha/args,
output name, ``ss_tag_frequency``), Stability's modelspec (``modelspec.architecture``,
``modelspec.title``, ``modelspec.trigger_phrase``) and civitai-style fields (``trainedWords``,
``baseModel``). Values come from strangers' files: every string is capped, nothing is executed,
and a malformed field is skipped rather than failing the load.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from . import safe_json
from .reading import read_metadata

log = logging.getLogger(__name__)

MAX_TEXT, MAX_WORD, MAX_WORDS, MAX_TAGS = 500, 100, 30, 50
MAX_COUNT = 1e15  # a tag count beyond this is not a count
TITLE_KEYS = ("modelspec.title", "ss_output_name", "name", "modelName", "title")
BASE_KEYS = ("modelspec.architecture", "ss_base_model_version", "baseModel", "base_model", "sd version",
             "ss_sd_model_name")
TRIGGER_KEYS = ("modelspec.trigger_phrase", "trainedWords", "trained_words", "activation text", "ss_trigger_words")
DESCRIPTION_KEYS = ("modelspec.description", "description", "ss_training_comment")
# A lower-cased base-model value containing the marker -> a human name (first match wins).
BASE_LABELS = (
    ("chroma", "Chroma"),
    # FLUX.2 before FLUX.1: musubi-tuner writes "Flux.2-klein-4b/lora", ai-toolkit "flux2_klein_4b" / "flux2"
    ("klein", "FLUX.2 [klein]"), ("flux.2-dev", "FLUX.2 [dev]"), ("flux_2_dev", "FLUX.2 [dev]"), ("flux.2", "FLUX.2"),
    ("flux_2", "FLUX.2"), ("flux-2", "FLUX.2"), ("flux2", "FLUX.2"),
    ("flux", "Flux"), ("stable-diffusion-v3", "SD 3"), ("sd3", "SD 3"), ("pony", "SDXL (Pony)"),
    ("illustrious", "SDXL (Illustrious)"), ("stable-diffusion-xl", "SDXL"), ("sdxl", "SDXL"),
    ("stable-diffusion-v2", "SD 2.x"), ("sd_v2", "SD 2.x"), ("sd 2", "SD 2.x"), ("sd2", "SD 2.x"),
    ("stable-diffusion-v1", "SD 1.x"), ("sd_v1", "SD 1.x"), ("sd 1", "SD 1.x"), ("sd1", "SD 1.x"),
    ("v1-5", "SD 1.x"), ("v1-4", "SD 1.x"),
)


@dataclass(frozen=True)
class LoraMetadata:
    """The parts of a header worth showing: title, trigger words, base model, training settings."""

    title: str = ""
    trigger_words: tuple[str, ...] = ()
    tags: tuple[tuple[str, int], ...] = ()  # ss_tag_frequency summed over folders, most frequent first
    base_model: str = ""  # a human name ("SDXL") or the raw value when unknown
    base_model_source: str = ""  # "ss_base_model_version='sdxl_base_v1-0'"
    architecture: str = ""
    network: str = ""  # ss_network_module, e.g. "networks.lora", "lycoris.kohya"
    algorithm: str = ""  # ss_network_args' "algo" for LyCORIS files
    dim: str = ""
    alpha: str = ""
    output_name: str = ""
    description: str = ""
    fields: int = 0  # how many metadata entries the header has

    def to_dict(self) -> dict:
        return {"title": self.title, "trigger_words": list(self.trigger_words),
                "tags": [[t, n] for t, n in self.tags], "base_model": self.base_model,
                "base_model_source": self.base_model_source, "architecture": self.architecture,
                "network": self.network, "algorithm": self.algorithm, "dim": self.dim, "alpha": self.alpha,
                "output_name": self.output_name, "description": self.description, "fields": self.fields}


def _text(value, limit: int = MAX_TEXT) -> str:
    text = value if isinstance(value, str) else str(value)
    return " ".join(text[: limit * 8].split())[:limit]  # cut first: a field may be megabytes long


def _first(meta: Mapping[str, str], keys) -> tuple[str, str]:
    """(key, value) of the first non-empty field among ``keys``."""
    for key in keys:
        value = _text(meta.get(key, ""))
        if value and value.lower() not in ("none", "null"):
            return key, value
    return "", ""


MAX_FIELD_CHARS = 4 * 1024 * 1024  # ss_tag_frequency of a large dataset runs to a few hundred KB
MAX_FIELD_DEPTH = 6  # {"folder": {"tag": count}} is 2 deep


def _json(raw):
    """A metadata field's JSON value, or None when it is not bounded, valid JSON (the field is then skipped)."""
    try:
        return safe_json.loads(raw, MAX_FIELD_CHARS, MAX_FIELD_DEPTH) if isinstance(raw, str) and raw else None
    except safe_json.UntrustedJsonError as exc:
        log.debug("metadata field skipped: %s", exc)
        return None


def tag_frequency(raw: str) -> tuple[tuple[str, int], ...]:
    """kohya's ``{"folder": {"tag": count}}`` -> ((tag, total), ...) by count, then name."""
    folders = _json(raw)
    counts: Counter[str] = Counter()
    for tags in folders.values() if isinstance(folders, dict) else ():
        for tag, n in tags.items() if isinstance(tags, dict) else ():
            word = _text(tag, MAX_WORD)
            if word and isinstance(n, (int, float)) and not isinstance(n, bool) and 0 < n < MAX_COUNT:
                counts[word] += int(n)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(ranked[:MAX_TAGS])


def _words(value: str) -> list[str]:
    """A JSON list or a comma-separated string -> words (list items as text: their depth is bounded)."""
    parsed = _json(value) if value.startswith("[") else None
    items = parsed if isinstance(parsed, list) else value[: MAX_TEXT * MAX_WORDS].split(",")
    return [w for w in (_text(item, MAX_WORD) for item in items[: MAX_WORDS * 10]) if w]


def trigger_words(meta: Mapping[str, str], tags) -> tuple[str, ...]:
    """Explicit trigger phrases first, then the training tags by frequency; unique, capped."""
    words = [w for key in TRIGGER_KEYS if meta.get(key) for w in _words(str(meta[key]))]
    words += [tag for tag, _ in tags]
    unique = dict.fromkeys(w for w in words if w)
    return tuple(unique)[:MAX_WORDS]


def base_label(value: str) -> str:
    lower = value.lower()
    return next((label for marker, label in BASE_LABELS if marker in lower), value)


def _base(meta: Mapping[str, str]) -> tuple[str, str]:
    key, value = _first(meta, BASE_KEYS)
    if not value and str(meta.get("ss_v2", "")).lower() == "true":
        key, value = "ss_v2", "sd_v2"
    return (base_label(value), f"{key}={value!r}") if value else ("", "")


def _algorithm(meta: Mapping[str, str]) -> str:
    args = _json(meta.get("ss_network_args", ""))
    algo = args.get("algo", "") if isinstance(args, dict) else ""
    return _text(algo, MAX_WORD) if isinstance(algo, str) else ""


def parse_metadata(meta: Mapping[str, str]) -> LoraMetadata:
    """Pure: a header's ``__metadata__`` (str -> str) -> LoraMetadata."""
    tags = tag_frequency(meta.get("ss_tag_frequency", ""))
    base, source = _base(meta)
    return LoraMetadata(
        title=_first(meta, TITLE_KEYS)[1], trigger_words=trigger_words(meta, tags), tags=tags,
        base_model=base, base_model_source=source, architecture=_text(meta.get("modelspec.architecture", "")),
        network=_text(meta.get("ss_network_module", "")), algorithm=_algorithm(meta),
        dim=_text(meta.get("ss_network_dim", ""), MAX_WORD), alpha=_text(meta.get("ss_network_alpha", ""), MAX_WORD),
        output_name=_text(meta.get("ss_output_name", "")), description=_first(meta, DESCRIPTION_KEYS)[1],
        fields=len(meta),
    )


def read_lora_metadata(path: str) -> LoraMetadata:
    """The metadata of a .safetensors file, reading only its header (LoraFileError if unreadable)."""
    return parse_metadata(read_metadata(path))
