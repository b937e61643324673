"""Single-file checkpoints (A1111/ComfyUI ``.safetensors``) loaded offline, with no diffusers folder.

1. Detect the architecture from the header (each family's rows, core.families.SINGLE_FILE_ARCHS).
2. Find every part: denoiser and VAE in the file (else a VAE file), text encoders in the file or as separate
   files (models/text_encoders, models/clip), tokenizers (tokenizer_files). Everything missing is reported
   in one error, before any weight is read.
3. Build each component with diffusers' own converters, configured from the pack's config folder of that
   architecture (core/families/<family>/configs/<arch>/), and assemble the pipeline.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace

import torch

from ..errors import PipelineLoadError
from ..families import FAMILIES, SINGLE_FILE_ARCHS
from . import build
from . import tokenizers as tokenizer_files
from .arch import (
    ENCODER_KINDS,
    OTHER_MARKERS,
    Arch,
    Header,
    describe_markers,
    detect,
    other_family,
    scheduler_overrides,
)
from .parts import (
    SCALED_FP8,
    Part,
    encoder_in_checkpoint,
    find_encoders,
    part_keys,
    pick_encoder,
    pick_vae,
    read_config,
    read_header,
    read_tensors,
    scan_files,
    vae_in_checkpoint,
    what_is,
)

log = logging.getLogger(__name__)

# what no family here loads from a single file: the families' own variants first, then other models
OTHER_VARIANTS = (*(v for f in FAMILIES.values() for v in f.other_variants), *OTHER_MARKERS)
_LORA_MARKERS = ("lora_", "lora.", "hada_", "lokr_", "dora_scale", ".alpha")
_NOT_DENOISER = ("first_stage_model.", "vae.", "text_encoders.", "cond_stage_model.", "conditioner.")


@dataclass(frozen=True)
class LocalFiles:
    """Folders a single file's missing parts are looked for in (ComfyUI's layout around the checkpoint by default)."""

    tokenizer_dirs: tuple[str, ...] = ()
    text_encoder_dirs: tuple[str, ...] = ()
    vae_dirs: tuple[str, ...] = ()

    @classmethod
    def beside(cls, path: str, tokenizer_dirs=()) -> LocalFiles:
        """``models/{tokenizers,diffusers,text_encoders,clip,vae}`` of the models folder above ``checkpoints/``."""
        folder = os.path.dirname(os.path.abspath(path))
        while os.path.basename(folder) != "checkpoints" and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        if os.path.basename(folder) != "checkpoints":
            return cls(tuple(tokenizer_dirs))
        models = os.path.dirname(folder)

        def present(*names: str) -> tuple[str, ...]:
            return tuple(p for p in (os.path.join(models, n) for n in names) if os.path.isdir(p))

        diffusers = present("diffusers")
        model_folders = tuple(e.path for d in diffusers for e in sorted(os.scandir(d), key=lambda e: e.name)
                              if e.is_dir())
        return cls(tuple(tokenizer_dirs) + present("tokenizers") + model_folders, present("text_encoders", "clip"),
                   present("vae"))


    def tokenizers_first(self, dirs) -> LocalFiles:
        """The same folders, with ``dirs`` searched for tokenizers before the others."""
        return replace(self, tokenizer_dirs=tuple(dirs) + tuple(d for d in self.tokenizer_dirs if d not in dirs))


@dataclass
class Plan:
    arch: Arch
    index: dict
    parts: dict[str, Part] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)  # optional encoders not found (SD3 without T5)
    problems: list[str] = field(default_factory=list)


def identify(header: Header) -> Arch:
    """The architecture of a checkpoint, or a PipelineLoadError saying what the file seems to be instead."""
    arch = detect(header, SINGLE_FILE_ARCHS)
    if arch is not None:
        return arch
    name = os.path.basename(header.path)
    keys = list(header.shapes)
    loraish = sum(any(m in k for m in _LORA_MARKERS) for k in keys)
    if keys and loraish * 2 >= len(keys):
        raise PipelineLoadError(f"{name!r} is a LoRA ({loraish} of its {len(keys)} keys are LoRA weights, e.g. "
                                f"{keys[0]!r}), not a checkpoint: put it in models/loras and add it with Load LoRA")
    other = other_family(header, OTHER_VARIANTS)
    if other:
        raise PipelineLoadError(f"{name!r} looks like {other}, which LoRA Deck does not load from a single file. "
                                f"Supported: {_titles()}")
    if not header.denoiser_prefix and find_encoders(header):
        raise PipelineLoadError(f"{name!r} is a text encoder ({what_is(header)}), not a checkpoint: "
                                "put it in models/text_encoders")
    if not header.denoiser_prefix and what_is(header).startswith("VAE"):
        raise PipelineLoadError(f"{name!r} is a VAE, not a checkpoint: put it in models/vae")
    raise PipelineLoadError(
        f"{name!r}: unknown architecture ({len(keys)} tensors; markers found: "
        f"{describe_markers(header, SINGLE_FILE_ARCHS)}). "
        f"LoRA Deck loads single files of: {_titles()}. For another model, put its diffusers folder "
        "(with model_index.json) in models/diffusers")


def _titles() -> str:
    return ", ".join(a.title for a in SINGLE_FILE_ARCHS if not a.tiny)


def plan(header: Header, arch: Arch, files: LocalFiles) -> Plan:
    """Where every component comes from; what is missing goes to ``problems`` (no weight is read yet)."""
    with open(os.path.join(arch.config_dir, "model_index.json"), encoding="utf-8") as f:
        result = Plan(arch, json.load(f))
    denoiser = "unet" if "unet" in result.index else "transformer"
    result.parts[denoiser] = Part(header.path, header.denoiser_prefix, header.denoiser_prefix, "the checkpoint")
    encoder_files = _Lazy(files.text_encoder_dirs)
    used: set = set()
    for slot in arch.encoders:
        if _component(result.index, slot.component) is None:
            continue
        config = read_config(arch, slot.component)
        part = encoder_in_checkpoint(header, slot, config)
        if isinstance(part, str):
            result.problems.append(part)
            continue
        part = part or pick_encoder(slot, config, encoder_files(), used)
        if part is not None:
            result.parts[slot.component] = part
        elif slot.required:
            result.problems.append(_missing_encoder(slot, config, files, encoder_files()))
        else:
            result.skipped.add(slot.component)
    vae = vae_in_checkpoint(header) or pick_vae(read_config(arch, "vae"), _Lazy(files.vae_dirs)())
    if vae is None:
        result.problems.append(_missing_vae(arch, files))
    else:
        result.parts["vae"] = vae
    return result


class _Lazy:
    """The headers of the files under some folders, scanned on first use only (most checkpoints need none)."""

    def __init__(self, dirs):
        self.dirs, self.headers = tuple(dirs), None

    def __call__(self) -> list[Header]:
        if self.headers is None:
            self.headers = scan_files(self.dirs)
        return self.headers


def _component(index: dict, name: str):
    value = index.get(name)
    return value if isinstance(value, list) and value[0] is not None else None


def _missing_encoder(slot, config: dict, files: LocalFiles, others: list[Header]) -> str:
    what, typical, _ = ENCODER_KINDS[slot.kind]
    width = config.get("hidden_size") or config.get("d_model")
    layers = config.get("num_hidden_layers") or config.get("num_layers")
    found = "; ".join(f"{os.path.basename(h.path)}: {what_is(h)}" for h in others) or "no .safetensors files"
    looked = ", ".join(files.text_encoder_dirs) or "no folder (models/text_encoders and models/clip do not exist)"
    return (f"it needs the {what} ({slot.component}: width {width}, {layers} layers), which is not in the file: put "
            f"{typical} in models/text_encoders (or models/clip). Looked in: {looked}; found there: {found}")


def _missing_vae(arch: Arch, files: LocalFiles) -> str:
    config = read_config(arch, "vae")
    looked = ", ".join(files.vae_dirs) or "no folder (models/vae does not exist)"
    channels = config["latent_channels"]
    return (f"it needs a VAE ({channels} latent channel{'s' * (channels != 1)}), which is not in the file: put "
            f"{arch.vae_file} in models/vae. Looked in: {looked}")


def build_pipeline(header: Header, result: Plan, tokenizers: dict, dtype: torch.dtype):
    import diffusers

    arch, components = result.arch, dict(tokenizers)
    pipeline_cls = getattr(diffusers, result.index["_class_name"])
    for name, spec in result.index.items():
        if name.startswith("_") or name in components or not isinstance(spec, list):
            continue
        if spec[0] is None or name in result.skipped:
            components[name] = None
            continue
        cls = build.component_class(*spec)
        if name == "scheduler":
            components[name] = build.scheduler(cls, arch.config_dir, scheduler_overrides(header))
            continue
        components[name] = _build_model(cls, name, result.parts[name], header, arch, dtype)
    kwargs = {k: v for k, v in result.index.items() if not k.startswith("_") and not isinstance(v, list)}
    return pipeline_cls(**components, **kwargs)


def _build_model(cls, name: str, part: Part, header: Header, arch: Arch, dtype: torch.dtype):
    source = header if part.path == header.path else read_header(part.path)
    exclude = _NOT_DENOISER if name in ("unet", "transformer") and not part.prefix else ()
    tensors = read_tensors(part.path, part_keys(source, part, exclude), (part.prefix, part.target))
    log.info("single file: %s from %s", name, part.label)
    try:
        if arch.prepare is not None and name in ("unet", "transformer"):
            tensors = arch.prepare(tensors, cls.load_config(arch.config_dir, subfolder=name))
        model = build.builder_for(cls)(cls, name, tensors, arch.config_dir, dtype)
    except PipelineLoadError:
        raise
    except Exception as exc:  # diffusers' converters raise KeyError/RuntimeError/ValueError on unexpected files
        raise PipelineLoadError(f"{os.path.basename(part.path)!r}: diffusers could not convert the {name} "
                                f"(from {part.label}) as {arch.title}: {type(exc).__name__}: {exc}") from exc
    build.check_complete(model, name, part.label)
    return model.eval()


def load_single_file(path: str, dtype: torch.dtype, device: torch.device, files: LocalFiles | None = None):
    """A diffusers pipeline from one original-layout checkpoint (+ separate encoder/VAE files), offline."""
    files = files or LocalFiles.beside(path)
    header = read_header(path)
    if SCALED_FP8 in header.shapes:
        raise PipelineLoadError(f"{os.path.basename(path)!r} is in ComfyUI's scaled fp8 format (weights with "
                                "per-tensor scales), which diffusers cannot load: use the fp16/bf16 or plain fp8 "
                                "release of the model")
    arch = identify(header)
    result = plan(header, arch, files)
    roots = tuple(files.tokenizer_dirs)
    kinds = {s.component: s.kind for s in arch.encoders
             if _component(result.index, s.component) and s.component not in result.skipped}
    tokenizers, missing = tokenizer_files.resolve(kinds, roots, builtin=arch.tiny)
    if missing:
        result.problems.insert(0, tokenizer_files.missing_message(missing, roots))
    if result.problems:
        raise PipelineLoadError(f"{os.path.basename(path)!r} is a {arch.title} checkpoint, but "
                                + "; and ".join(result.problems))
    for component in result.skipped:
        log.info("single file: %s has no %s; the pipeline runs without it", os.path.basename(path), component)
    tokenizers.update({c.replace("text_encoder", "tokenizer"): None for c in result.skipped})
    return build_pipeline(header, result, tokenizers, dtype).to(device)
