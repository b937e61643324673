"""Single-file models loaded offline, with no diffusers folder: A1111/ComfyUI checkpoints (``models/checkpoints``)
and ComfyUI's split layout, a denoiser alone (``models/diffusion_models``, ``models/unet``; ``.safetensors`` in
any precision ComfyUI reads, fp8 and scaled fp8 included, or ``.gguf``) with its text encoders and VAE beside it.

1. Detect the architecture from the header (each family's rows, core.families.SINGLE_FILE_ARCHS); for rows with a
   ``derive`` hook, work the configs out of the shapes (``models.configs``).
2. Find every part: denoiser and VAE in the file (else a VAE file), text encoders in the file or as separate
   files (models/text_encoders, models/clip), each recognised by its keys and shapes or named explicitly
   (``LocalFiles.picked``), tokenizers (tokenizer_files). Everything missing is reported in one error, before any
   weight is read.
3. Build each component with diffusers' own converters, configured from those configs; quantized Linear weights
   stay quantized (``models.quantized``). Assemble the pipeline.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace

import torch

from ..errors import PipelineLoadError
from ..families import FAMILIES, SINGLE_FILE_ARCHS, family_for_class
from . import build
from . import configs as config_files
from . import tokenizers as tokenizer_files
from .arch import (
    ENCODER_KINDS,
    OTHER_MARKERS,
    Arch,
    ConfigMismatch,
    Header,
    describe_markers,
    detect,
    nearest,
    other_family,
    scheduler_overrides,
)
from .parts import (
    Part,
    encoder_in_checkpoint,
    find_encoders,
    part_keys,
    pick_encoder,
    pick_image_encoder,
    pick_vae,
    read_config,
    read_header,
    read_tensors,
    scan_files,
    vae_in_checkpoint,
    what_is,
)
from .quantized import loading as quantized
from .quantized.reading import read_part

log = logging.getLogger(__name__)

# what no family here loads from a single file: the families' own variants first, then other models
OTHER_VARIANTS = (*(v for f in FAMILIES.values() for v in f.other_variants), *OTHER_MARKERS)
_LORA_MARKERS = ("lora_", "lora.", "hada_", "lokr_", "dora_scale", ".alpha")
_NOT_DENOISER = ("first_stage_model.", "vae.", "text_encoders.", "cond_stage_model.", "conditioner.")


MODEL_FOLDERS = ("checkpoints", "diffusion_models", "unet")  # where ComfyUI keeps the files Load Pipeline lists


@dataclass(frozen=True)
class LocalFiles:
    """Where a single file's missing parts are looked for (ComfyUI's layout around the file by default), and the
    parts picked explicitly: encoder files (each goes to the slot its keys and shapes fit) and a VAE file."""

    tokenizer_dirs: tuple[str, ...] = ()
    text_encoder_dirs: tuple[str, ...] = ()
    vae_dirs: tuple[str, ...] = ()
    text_encoder_files: tuple[str, ...] = ()
    vae_file: str = ""
    expert_file: str = ""  # the other denoiser of a two-expert model (Wan 2.2 A14B's low-noise expert)
    clip_vision_dirs: tuple[str, ...] = ()  # image encoders (models/clip_vision: Wan 2.1 I2V's clip_vision_h)

    @classmethod
    def beside(cls, path: str, tokenizer_dirs=()) -> LocalFiles:
        """``models/{tokenizers,diffusers,text_encoders,clip,vae}`` of the models folder above ``checkpoints/``,
        ``diffusion_models/`` or ``unet/``."""
        folder = os.path.dirname(os.path.abspath(path))
        while os.path.basename(folder) not in MODEL_FOLDERS and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        if os.path.basename(folder) not in MODEL_FOLDERS:
            return cls(tuple(tokenizer_dirs))
        models = os.path.dirname(folder)

        def present(*names: str) -> tuple[str, ...]:
            return tuple(p for p in (os.path.join(models, n) for n in names) if os.path.isdir(p))

        diffusers = present("diffusers")
        model_folders = tuple(e.path for d in diffusers for e in sorted(os.scandir(d), key=lambda e: e.name)
                              if e.is_dir())
        return cls(tuple(tokenizer_dirs) + present("tokenizers") + model_folders, present("text_encoders", "clip"),
                   present("vae"), clip_vision_dirs=present("clip_vision"))

    def tokenizers_first(self, dirs) -> LocalFiles:
        """The same folders, with ``dirs`` searched for tokenizers before the others."""
        return replace(self, tokenizer_dirs=tuple(dirs) + tuple(d for d in self.tokenizer_dirs if d not in dirs))

    def picked(self, text_encoders=(), vae: str = "", expert: str = "") -> LocalFiles:
        """The same folders, with these files used first (``""`` entries: none picked)."""
        return replace(self, text_encoder_files=tuple(p for p in text_encoders if p), vae_file=vae or "",
                       expert_file=expert or "")


@dataclass
class Plan:
    arch: Arch
    index: dict
    parts: dict[str, Part] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)  # optional encoders not found (SD3 without T5)
    problems: list[str] = field(default_factory=list)
    configs: config_files.Configs | None = None  # where each config value came from (None: the shipped folder)

    def source(self, component: str, key: str) -> str:
        return self.configs.source(component, key) if self.configs else f"the shipped {self.arch.title} config"


def identify(header: Header, paired: bool = False) -> Arch:
    """The architecture of a model file, or a PipelineLoadError saying what the file seems to be instead;
    ``paired``: a second denoiser file was picked (a two-expert model's row, where the row names one)."""
    arch = _identify(header)
    if paired and arch.paired:
        return next(a for a in SINGLE_FILE_ARCHS if a.key == arch.paired)
    return arch


def _identify(header: Header) -> Arch:
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
    arch = nearest(header, SINGLE_FILE_ARCHS)  # another size of an architecture whose config the shapes tell
    if arch is not None:
        return arch
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


def plan(header: Header, arch: Arch, files: LocalFiles, configs: config_files.Configs | None = None) -> Plan:
    """Where every component comes from; what is missing goes to ``problems`` (no weight is read yet)."""
    with open(os.path.join(arch.config_dir, "model_index.json"), encoding="utf-8") as f:
        result = Plan(arch, json.load(f), configs=configs)
    denoiser = "unet" if "unet" in result.index else "transformer"
    label = "the checkpoint" if os.path.basename(os.path.dirname(header.path)) == "checkpoints" else "the file"
    result.parts[denoiser] = Part(header.path, header.denoiser_prefix, header.denoiser_prefix, label)
    _plan_experts(header, arch, files, result, denoiser)
    _plan_encoders(header, arch, files, result)
    _plan_image_encoder(arch, files, result)
    _plan_vae(header, arch, files, result)
    return result


def _plan_image_encoder(arch: Arch, files: LocalFiles, result: Plan) -> None:
    """A CLIP-vision image encoder (Wan 2.1 I2V: ComfyUI's clip_vision_h) from models/clip_vision, by its shapes."""
    if _component(result.index, "image_encoder") is None:
        return
    config = read_config(arch, "image_encoder")
    part = pick_image_encoder(config, _Lazy(files.clip_vision_dirs)())
    if part is not None:
        result.parts["image_encoder"] = part
        return
    width, width_source = _value(result, "image_encoder", config, "hidden_size")
    looked = ", ".join(files.clip_vision_dirs) or "no folder (models/clip_vision does not exist)"
    result.problems.append(
        f"it needs a CLIP vision image encoder (image_encoder: width {width}, {config['num_hidden_layers']} layers, "
        f"patch {config['patch_size']}; {width_source}): put clip_vision_h.safetensors in models/clip_vision. "
        f"Looked in: {looked}")


def _experts(result: Plan) -> tuple[str, ...]:
    family = family_for_class(result.index["_class_name"])
    return tuple(c for c in family.experts if _component(result.index, c))


def _plan_experts(header: Header, arch: Arch, files: LocalFiles, result: Plan, denoiser: str) -> None:
    """The other denoiser files of a two-expert model: picked, else found by the usual names beside the file;
    each must have the denoiser's architecture (the same values read off its shapes)."""
    experts = _experts(result)
    if not experts:
        if files.expert_file:
            result.problems.append(f"a second denoiser {os.path.basename(files.expert_file)!r} was picked, but "
                                   f"{arch.title} has one denoiser; pick none")
        return
    named = arch.experts(header.path) if arch.experts else None
    if files.expert_file:  # the picked one is the other expert; the names say which is which, else it is the second
        paths = dict(named) if named else {}
        if not named or os.path.realpath(files.expert_file) not in map(os.path.realpath, paths.values()):
            paths = {denoiser: header.path, experts[0]: files.expert_file}
            if named:
                own = next(c for c, p in named.items() if p == header.path)
                paths = {own: header.path, (experts[0] if own == denoiser else denoiser): files.expert_file}
    else:
        paths = named or {denoiser: header.path}
    labels = dict(family_for_class(result.index["_class_name"]).labels)
    own = next((c for c, p in paths.items() if p == header.path), denoiser)
    for component in (denoiser, *experts):
        path = paths.get(component)
        if path is None or not os.path.isfile(path):
            wanted = repr(os.path.basename(path)) if path else "(its file)"
            result.problems.append(
                f"this file is the {labels.get(own, own)} expert ({own}) of a model with {1 + len(experts)} "
                f"denoisers, and the {labels.get(component, component)} expert ({component}) {wanted} is not beside "
                f"it in {os.path.dirname(header.path)}: put it there, or pick it as the second denoiser")
            continue
        other = read_header(path) if path != header.path else header
        result.parts[component] = Part(path, other.denoiser_prefix, other.denoiser_prefix,
                                       "the file" if path == header.path else path)
        if path != header.path and _weights(other) != _weights(header):
            result.problems.append(f"the {labels.get(component, component)} expert {os.path.basename(path)!r} "
                                   f"has another architecture than {os.path.basename(header.path)!r} "
                                   "(other shapes); pick the pair of one model")


def _weights(header: Header) -> dict:
    """The denoiser's weight shapes (scales and other quantization keys aside): one architecture's experts agree."""
    from .arch import denoiser_shapes

    return {k: v for k, v in denoiser_shapes(header, _NOT_DENOISER).items() if k.endswith((".weight", ".bias"))}


def _plan_encoders(header: Header, arch: Arch, files: LocalFiles, result: Plan) -> None:
    """Each encoder slot from a picked file, else the checkpoint, else the folders (by keys and shapes)."""
    picked = [read_header(p) for p in files.text_encoder_files]
    encoder_files = _Lazy(files.text_encoder_dirs)
    used: set = set()
    for slot in arch.encoders:
        if _component(result.index, slot.component) is None:
            continue
        config = read_config(arch, slot.component)
        part = pick_encoder(slot, config, picked, used) or encoder_in_checkpoint(header, slot, config)
        if isinstance(part, str):
            result.problems.append(part)
            continue
        part = part or pick_encoder(slot, config, encoder_files(), used)
        if part is not None:
            result.parts[slot.component] = part
        elif slot.required:
            result.problems.append(_missing_encoder(slot, config, files, encoder_files(), result))
        else:
            result.skipped.add(slot.component)
    for header_picked in picked:
        if not any(p.path == header_picked.path for p in result.parts.values()):
            result.problems.append(f"the text encoder file {os.path.basename(header_picked.path)!r} that was picked "
                                   f"({what_is(header_picked)}) fits none of its text encoders")


def _plan_vae(header: Header, arch: Arch, files: LocalFiles, result: Plan) -> None:
    config = read_config(arch, "vae")
    if files.vae_file:
        vae = pick_vae(config, [read_header(files.vae_file)])
        if vae is None:
            result.problems.append(f"the VAE file {os.path.basename(files.vae_file)!r} that was picked is a "
                                   f"{what_is(read_header(files.vae_file))}, not {_vae_wanted(config, result)}")
            return
    else:
        vae = vae_in_checkpoint(header) or pick_vae(config, _Lazy(files.vae_dirs)(), arch.vae_hints)
    if vae is None:
        result.problems.append(_missing_vae(arch, files, result))
    else:
        result.parts["vae"] = vae


class _Lazy:
    """The headers of the files under some folders, scanned on first use only (most checkpoints need none)."""

    def __init__(self, dirs):
        self.dirs, self.headers = tuple(dirs), None

    def __call__(self) -> list[Header]:
        if self.headers is None:
            self.headers = scan_files(self.dirs)
        return self.headers


def _is_component(spec) -> bool:
    """A model_index.json entry naming a component ([library, class] or [null, null]), not a pipeline setting
    (Krea 2's ``text_encoder_select_layers`` list)."""
    return isinstance(spec, list) and len(spec) == 2 and all(v is None or isinstance(v, str) for v in spec)


def _component(index: dict, name: str):
    value = index.get(name)
    return value if _is_component(value) and value[0] is not None else None


def _value(result: Plan, component: str, config: dict, *keys: str) -> tuple[object, str]:
    """A config value and where it came from: ``(4096, "d_model from the denoiser's txt_in.weight [3072, 4096]")``."""
    key = next((k for k in keys if config.get(k) is not None), keys[0])
    return config.get(key), f"{key} from {result.source(component, key)}"


def _missing_encoder(slot, config: dict, files: LocalFiles, others: list[Header], result: Plan) -> str:
    what, typical, _ = ENCODER_KINDS[slot.kind]
    typical = slot.file or typical
    config = config.get("text_config", config)  # multimodal encoders nest the language model's (Mistral 3, Qwen-VL)
    width, width_source = _value(result, slot.component, config, "hidden_size", "d_model")
    layers, layers_source = _value(result, slot.component, config, "num_hidden_layers", "num_layers")
    found = "; ".join(f"{os.path.basename(h.path)}: {what_is(h)}" for h in others) or "no .safetensors files"
    looked = ", ".join(files.text_encoder_dirs) or "no folder (models/text_encoders and models/clip do not exist)"
    return (f"it needs the {what} ({slot.component}: width {width}, {layers} layers; {width_source}, "
            f"{layers_source}), which is not in the file: put {typical} in models/text_encoders (or models/clip). "
            f"Looked in: {looked}; found there: {found}")


def _vae_wanted(config: dict, result: Plan) -> str:
    channels, source = _value(result, "vae", config, "latent_channels", "z_dim")
    return f"a VAE ({channels} latent channel{'s' * (channels != 1)}; {source})"


def _missing_vae(arch: Arch, files: LocalFiles, result: Plan) -> str:
    config = read_config(arch, "vae")
    looked = ", ".join(files.vae_dirs) or "no folder (models/vae does not exist)"
    return (f"it needs {_vae_wanted(config, result)}, which is not in the file: put {arch.vae_file} in models/vae. "
            f"Looked in: {looked}")


def build_pipeline(header: Header, result: Plan, tokenizers: dict, dtype: torch.dtype):
    import diffusers

    arch, components = result.arch, dict(tokenizers)
    pipeline_cls = getattr(diffusers, result.index["_class_name"])
    family = family_for_class(result.index["_class_name"])
    if family.file_components is not None:
        components.update(family.file_components(result.index, components))
    for name, spec in result.index.items():
        if name.startswith("_") or name in components or not _is_component(spec):
            continue
        if spec[0] is None or name in result.skipped:
            components[name] = None
            continue
        cls = build.component_class(*spec)
        if name == "scheduler":
            components[name] = build.scheduler(cls, arch.config_dir, scheduler_overrides(header))
            continue
        if name == "image_processor":  # configs only (Wan 2.1 I2V's CLIP preprocessing)
            components[name] = cls.from_pretrained(os.path.join(arch.config_dir, name), local_files_only=True)
            continue
        denoiser = name in ("unet", "transformer", *family.experts)
        names = family.original_names if denoiser else quantized.same_names
        components[name] = _build_model(cls, name, result.parts[name], header, arch, dtype, names, denoiser)
    kwargs = {k: v for k, v in result.index.items() if not k.startswith("_") and not _is_component(v)}
    return pipeline_cls(**components, **kwargs)


def _build_model(cls, name: str, part: Part, header: Header, arch: Arch, dtype: torch.dtype, names,
                 denoiser: bool | None = None):
    """One component from its part of a file. Linear weights the file quantized stay quantized where the module
    table (``names(model)``: original layer -> diffusers Linear(s)) places them (``models.quantized.loading``); in a
    component that module cannot build they are dequantized exactly and the component is built dense."""
    source = header if part.path == header.path else read_header(part.path)
    denoiser = name in ("unet", "transformer") if denoiser is None else denoiser
    # ComfyUI's UMT5 files carry their tokenizer (spiece_model): not a weight
    exclude = _NOT_DENOISER if denoiser and not part.prefix else (tokenizer_files.SPIECE,)
    tensors, quant = read_part(source, part_keys(source, part, exclude), (part.prefix, part.target), dtype,
                               read_tensors)
    label = f"{os.path.basename(part.path)!r} ({name})"
    log.info("single file: %s from %s", name, part.label)
    try:
        # a denoiser the row builds itself (no diffusers converter) comes out of prepare in the model's own names
        own_names = denoiser and name in arch.builders
        model = quantized.empty_model(cls, arch.config_dir, name, own_names) if quant else None
        kept = quantized.plan(quant, (names or (lambda m: {}))(model) or {}, model, part.target) if model else {}
        if quant:
            tensors = quantized.with_placeholders(tensors, quant, kept, dtype)
        if arch.prepare is not None and denoiser:
            tensors = arch.prepare(tensors, cls.load_config(arch.config_dir, subfolder=name))
        if kept:
            quantized.load(model, quantized.convert(model, tensors), dtype, label)
            quantized.install(model, quant, kept, dtype, label)
        else:
            builder = arch.builders.get(name) or build.builder_for(cls)
            model = builder(cls, name, tensors, arch.config_dir, dtype)
    except PipelineLoadError as exc:
        if os.path.basename(part.path) in str(exc):
            raise
        raise PipelineLoadError(f"{os.path.basename(part.path)!r} ({name}, from {part.label}): {exc}") from None
    except Exception as exc:  # diffusers' converters raise KeyError/RuntimeError/ValueError on unexpected files
        raise PipelineLoadError(f"{os.path.basename(part.path)!r}: diffusers could not convert the {name} "
                                f"(from {part.label}) as {arch.title}: {type(exc).__name__}: {exc}") from exc
    # the label names the file (a denoiser alone says "the file": the message must say which)
    named = part.label if os.path.basename(part.path) in part.label else f"{part.label} {os.path.basename(part.path)!r}"
    build.check_complete(model, name, named)
    _keep_fp32(model, dtype)
    if quant:
        log.info("%s: %s", label, quantized.summary(model))
    return model.eval()


def _keep_fp32(model, dtype: torch.dtype) -> None:
    """The modules a diffusers model keeps in float32 (``_keep_in_fp32_modules``: Wan's norms, time embedder and
    modulation tables, Krea 2's norms) kept so at any dtype, as ``from_pretrained`` loads them (diffusers'
    single-file loader does it for float16 only): a split file then computes as the diffusers folder does (a bf16
    file gives the folder's images). Quantized weights stay as stored."""
    import diffusers

    keep = getattr(model, "_keep_in_fp32_modules", None) if dtype != torch.float32 else None
    if not keep or not isinstance(model, diffusers.ModelMixin):  # transformers' T5 keeps wo in fp32 for fp16 only
        return
    keep = [keep] if isinstance(keep, str) else keep
    from .quantized.linear import QuantizedLinear

    # layers kept quantized compute at the model's dtype, bias included (a ComfyUI fp8 file's time embedder)
    quantized = tuple(f"{n}." for n, m in model.named_modules() if isinstance(m, QuantizedLinear))

    def kept(name: str, tensor) -> bool:
        return tensor.is_floating_point() and tensor.element_size() > 1 and not name.startswith(quantized) \
            and any(m in name.split(".") for m in keep)

    for name, param in model.named_parameters():
        if kept(name, param):
            param.data = param.data.to(torch.float32)
    buffers = [name for name, buffer in model.named_buffers() if kept(name, buffer)]
    if buffers:  # computed in __init__ (Wan's RoPE tables): computed again in float32, not cast back from dtype
        from accelerate import init_empty_weights

        with init_empty_weights():  # parameters on the meta device, buffers computed
            fresh = dict(type(model).from_config(model.config).named_buffers())
        for name in buffers:
            module, _, leaf = name.rpartition(".")
            owner = model.get_submodule(module) if module else model
            owner._buffers[leaf] = fresh[name].to(owner._buffers[leaf].device, torch.float32)


def _configs(path: str, header: Header, config_folders, paired: bool = False) -> config_files.Configs:
    arch = identify(header, paired)
    try:
        return config_files.resolve(arch, header, config_folders, _NOT_DENOISER)
    except ConfigMismatch as exc:
        raise PipelineLoadError(f"{os.path.basename(path)!r} is a {arch.title} checkpoint, but {exc}") from None


def load_single_file(path: str, dtype: torch.dtype, device: torch.device, files: LocalFiles | None = None,
                     config_folders=()):
    """A diffusers pipeline from one original-layout model file (+ separate encoder/VAE files), offline.
    ``config_folders``: diffusers folders whose configs give what a derived architecture's shapes cannot tell."""
    files = files or LocalFiles.beside(path)
    header = read_header(path)
    configs = _configs(path, header, config_folders, bool(files.expert_file))
    try:
        return _load(path, header, configs, files, dtype, device)
    finally:
        configs.cleanup()


def load_denoiser(path: str, dtype: torch.dtype, device: torch.device | None = None, config_folders=()):
    """The denoiser of a model file alone, as diffusers' model class (no encoder, VAE or tokenizer needed): what
    ComfyUI's Load Diffusion Model gives, quantized weights kept quantized."""
    header = read_header(path)
    configs = _configs(path, header, config_folders)
    try:
        with open(os.path.join(configs.arch.config_dir, "model_index.json"), encoding="utf-8") as f:
            index = json.load(f)
        name = "unet" if "unet" in index else "transformer"
        part = Part(header.path, header.denoiser_prefix, header.denoiser_prefix, "the file")
        model = _build_model(build.component_class(*index[name]), name, part, header, configs.arch, dtype,
                             family_for_class(index["_class_name"]).original_names)
    finally:
        configs.cleanup()
    return model.to(device) if device is not None else model


def _load(path: str, header: Header, configs: config_files.Configs, files: LocalFiles, dtype, device):
    arch = configs.arch
    result = plan(header, arch, files, configs)
    roots = tuple(files.tokenizer_dirs)
    kinds = {s.component: s.kind for s in arch.encoders
             if _component(result.index, s.component) and s.component not in result.skipped}
    encoder_files = {c: result.parts[c].path for c in kinds if c in result.parts}
    tokenizers, missing = tokenizer_files.resolve(kinds, roots, builtin=arch.tiny, files=encoder_files)
    if missing:
        result.problems.insert(0, tokenizer_files.missing_message(missing, roots))
    if result.problems:
        raise PipelineLoadError(f"{os.path.basename(path)!r} is a {arch.title} checkpoint, but "
                                + "; and ".join(result.problems))
    for component in result.skipped:
        log.info("single file: %s has no %s; the pipeline runs without it", os.path.basename(path), component)
    tokenizers.update({c.replace("text_encoder", "tokenizer"): None for c in result.skipped})
    return build_pipeline(header, result, tokenizers, dtype).to(device)
