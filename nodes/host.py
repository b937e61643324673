"""Everything the nodes need from their host: ComfyUI when it is there, the headless runner otherwise.

This is the only module that imports ComfyUI (``folder_paths``, ``comfy.*``). The nodes reach the
runtime (settings, adapter store, pipelines, folders) through ``runtime()``: the one the headless
runner or a test activated with ``using(...)``, else this process's own (ComfyUI's folders inside
ComfyUI, ``LORADECK_MODELS_DIR`` headless).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
from collections.abc import Callable, Iterable

from ..core.errors import PipelineLoadError
from ..core.families import BUILTIN_NAMES
from ..core.files.lookup import MAX_NAME, Located, inside, listing, locate
from ..core.files.reading import unusable
from ..core.models.single_file import LocalFiles
from ..core.runtime import Folders, Runtime
from ..core.settings import Settings
from .naming import save_path

try:  # inside ComfyUI
    import folder_paths  # type: ignore[import-not-found]
except ImportError:
    folder_paths = None

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_LORAS = os.path.join(PACK_DIR, "demo", "models", "loras")  # the shipped demo LoRAs: examples run anywhere
IN_COMFYUI = folder_paths is not None


class ComfyFolders:
    """ComfyUI's model folders (``extra_model_paths.yaml`` included) and output folder."""

    def roots(self, kind: str) -> list[str]:
        found = list(folder_paths.get_folder_paths(kind)) if kind in folder_paths.folder_names_and_paths else []
        found += [DEMO_LORAS] if kind == "loras" else []
        return [r for r in dict.fromkeys(found) if os.path.isdir(r)]

    def output(self) -> str:
        return folder_paths.get_output_directory()


def headless_folders(models_dir: str | None = None, output_dir: str | None = None,
                     settings: Settings | None = None) -> Folders:
    """ComfyUI's layout under ``models_dir`` (default: the LORADECK_MODELS_DIR setting), plus the demo LoRAs."""
    models_dir = models_dir or (settings or Settings.from_env()).models_dir
    return Folders(models_dir, output_dir or "output", (("loras", (DEMO_LORAS,)),))


_active: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar("loradeck_runtime", default=None)
_process: Runtime | None = None
_process_lock = threading.Lock()


def runtime() -> Runtime:
    """The runtime activated by ``using``, else this process's own (made on first use)."""
    active = _active.get()
    if active is not None:
        return active
    global _process
    with _process_lock:
        if _process is None:
            settings = Settings.from_env()
            _process = Runtime(settings, ComfyFolders() if IN_COMFYUI else headless_folders(settings=settings))
        return _process


@contextlib.contextmanager
def using(active: Runtime):
    """Run the nodes against ``active`` (the headless runner and tests); re-entrant and per thread."""
    token = _active.set(active)
    try:
        yield active
    finally:
        _active.reset(token)


def in_comfyui_lists(path: str) -> bool:
    """Whether ComfyUI's own LoRA list — what its frontend checks a workflow's recorded models against — has
    this file. The shipped demo LoRAs are offered by LoRA Deck's nodes only, so recording them there would
    flag them as missing on every reopen."""
    return not os.path.realpath(path).startswith(os.path.realpath(DEMO_LORAS) + os.sep)


def lora_names() -> list[str]:
    return listing(runtime().folders.roots("loras"))


def locate_lora(name: str, hashes: Iterable[str] = (), current: Runtime | None = None) -> Located:
    """The file for a workflow's LoRA name; ``hashes`` (recorded with the node) find it under another name."""
    current = current or runtime()
    return locate(name, current.folders.roots("loras"), hashes, current.hashes)


def diffusers_models() -> list[str]:
    """Folders under ``models/diffusers`` that hold a ``model_index.json`` (two levels deep), single-file
    checkpoints under ``models/checkpoints``, then the built-ins."""
    folders = sorted({os.path.relpath(f, r).replace(os.sep, "/") for r, f in _diffusers_folders()}, key=str.lower)
    files = listing(runtime().folders.roots("checkpoints"))
    return folders + files + list(BUILTIN_NAMES)


MODEL_FILE_SUFFIXES = (".safetensors", ".gguf")  # a denoiser alone: safetensors in any precision, or ComfyUI-GGUF


def _roots(*kinds: str) -> list[str]:
    folders = runtime().folders
    return list(dict.fromkeys(r for kind in kinds for r in folders.roots(kind)))


def diffusion_models() -> list[str]:
    """Denoiser files under ``models/diffusion_models`` and ``models/unet`` (ComfyUI's older name):
    ``.safetensors`` (fp16/bf16, fp8, scaled fp8) and ``.gguf``."""
    return listing(_roots("diffusion_models", "unet"), MODEL_FILE_SUFFIXES)


def text_encoder_files() -> list[str]:
    return listing(_roots("text_encoders", "clip"))


def vae_files() -> list[str]:
    return listing(_roots("vae"))


def part_path(kinds: tuple[str, ...], name: str, what: str) -> str:
    """The file ``name`` (as listed) under the folders of ``kinds``, or a PipelineLoadError saying where it was
    looked for."""
    why = unusable(name, MAX_NAME)
    if why:
        raise PipelineLoadError(f"{what} name {name!r:.80} is not a usable file name ({why}); pick one from the list")
    roots = _roots(*kinds)
    for root in roots:
        path = inside(root, name)
        if path:
            return path
    raise PipelineLoadError(f"{what} {name!r} was not found under {', '.join(roots) or 'models/' + kinds[0]}; "
                            "pick a file from the list")


def diffusers_folders() -> tuple[str, ...]:
    """Full paths of the local diffusers folders (single-file checkpoints take their configs from these)."""
    return tuple(folder for _, folder in _diffusers_folders())


def _diffusers_folders() -> list[tuple[str, str]]:
    found = []
    for root in runtime().folders.roots("diffusers"):
        for top in (os.path.join(root, e) for e in _subfolders(root)):
            inner = [top] if _is_model(top) else [os.path.join(top, e) for e in _subfolders(top)]
            found.extend((root, folder) for folder in inner if _is_model(folder))
    return found


def _is_model(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "model_index.json"))


def tokenizer_dirs() -> tuple[str, ...]:
    """Where single-file checkpoints take tokenizers from: inside ComfyUI, ComfyUI's own bundled tokenizer
    files (its ``comfy`` package: sd1_tokenizer, text_encoders/t5_tokenizer); headless, ``models/tokenizers``.
    Then the local diffusers folders (their tokenizer*/ subfolders)."""
    own = _comfy_package_dirs() if IN_COMFYUI else runtime().folders.roots("tokenizers")
    return tuple(own) + diffusers_folders()


def _comfy_package_dirs() -> list[str]:
    try:
        import comfy  # type: ignore[import-not-found]
    except ImportError:
        return []
    # comfy may be a namespace package (no __init__.py, no __file__): its __path__ lists its folder
    return [os.path.abspath(p) for p in getattr(comfy, "__path__", [])]


def single_file_sources() -> LocalFiles:
    """Where a single-file checkpoint's tokenizers and separate text encoders (``models/text_encoders``,
    ``models/clip``) and VAE (``models/vae``) are, in ComfyUI's folder layout."""
    folders = runtime().folders
    encoders = tuple(dict.fromkeys(folders.roots("text_encoders") + folders.roots("clip")))
    return LocalFiles(tokenizer_dirs(), encoders, tuple(folders.roots("vae")),
                      clip_vision_dirs=tuple(folders.roots("clip_vision")))


def _subfolders(folder: str) -> list[str]:
    try:
        return sorted(e for e in os.listdir(folder) if os.path.isdir(os.path.join(folder, e)))
    except OSError:
        return []


def model_path(name: str) -> str:
    why = unusable(name, MAX_NAME)
    if why:
        raise PipelineLoadError(f"model name {name!r:.80} is not a usable model name ({why}); pick a model from "
                                "the list")
    if name in BUILTIN_NAMES:
        return name
    folders = runtime().folders
    if name.lower().endswith(".safetensors"):
        for root in folders.roots("checkpoints"):
            path = inside(root, name)
            if path:
                return path
    for root in folders.roots("diffusers"):
        index = inside(root, f"{name}/model_index.json")
        if index:
            return os.path.dirname(index)
    raise PipelineLoadError(f"model {name!r} was not found under models/diffusers or models/checkpoints; "
                            "put a diffusers folder (with model_index.json) or a .safetensors checkpoint there, "
                            "or pick another model")


def save_image_path(prefix: str, width: int, height: int, output_dir: str | None = None) -> tuple[str, str, int, str]:
    """(folder, file name stem, first counter, subfolder) for an image ``filename_prefix``, named as ComfyUI's
    Save Image names it: ComfyUI's own function inside ComfyUI, the same rules headless (naming.py)."""
    if IN_COMFYUI and output_dir is None:
        folder, stem, counter, subfolder, _ = folder_paths.get_save_image_path(
            prefix, folder_paths.get_output_directory(), width, height)
        return folder, stem, counter, subfolder
    output = os.path.abspath(output_dir or runtime().folders.output())
    folder, stem, counter = save_path(output, prefix)
    subfolder = os.path.relpath(folder, output)
    return folder, stem, counter, "" if subfolder == "." else subfolder


def metadata_disabled() -> bool:
    """ComfyUI's --disable-metadata: then images are saved without text chunks, as its Save Image does."""
    if not IN_COMFYUI:
        return False
    from comfy.cli_args import args  # type: ignore[import-not-found]

    return bool(getattr(args, "disable_metadata", False))


def progress_reporter(total: int) -> Callable[[int, int], None]:
    """A per-step callback: ComfyUI's progress bar (which also raises on Cancel) or a terminal bar."""
    if IN_COMFYUI:
        import comfy.model_management  # type: ignore[import-not-found]
        import comfy.utils  # type: ignore[import-not-found]

        bar = comfy.utils.ProgressBar(total)

        def report(step: int, of: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            bar.update_absolute(step, of)

        return report
    return _terminal_bar


def _terminal_bar(step: int, total: int) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    done = int(width * step / max(total, 1))
    sys.stderr.write(f"\r  [{'#' * done}{'.' * (width - done)}] {step}/{total}")
    if step >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


# -- ComfyUI's own MODEL and CLIP (the LoRA Loader (LoRA Deck) node; pure parts in nodes/native/) --------------
def comfy_models(model, clip):
    """What LoRA Deck needs to know about a ComfyUI MODEL (ModelPatcher) and CLIP: the model config's class name,
    ComfyUI's own LoRA key maps (``comfy.lora.model_lora_keys_unet`` / ``model_lora_keys_clip``, each given a
    fresh dict) and the original tensors by key (``get_key_patches``: the backup when a patched copy is loaded)."""
    import comfy.lora  # type: ignore[import-not-found]

    from .native.targets import ComfyModels

    def originals(patcher) -> dict:
        return {k: v[0][0] if isinstance(v[0], tuple) else v[0] for k, v in patcher.get_key_patches().items()}

    unet_keys = comfy.lora.model_lora_keys_unet(model.model, {})
    clip_keys = comfy.lora.model_lora_keys_clip(clip.cond_stage_model, {}) if clip is not None else {}
    return ComfyModels(type(model.model.model_config).__name__, unet_keys, clip_keys, originals(model),
                       originals(clip.patcher) if clip is not None else {})


def comfy_adapter(patch):
    """A nodes.native.patches patch as the value ComfyUI's add_patches takes: its own LoRA adapter with the file's
    tensors, its own LoHa/LoKr/LoRA adapter loaded from a module's factors as it loads them from the file, or a
    whole difference."""
    from comfy.weight_adapter import LoHaAdapter, LoKrAdapter, LoRAAdapter  # type: ignore[import-not-found]

    from .native.patches import FactorPatch, LoraPatch

    if isinstance(patch, LoraPatch):
        return LoRAAdapter(set(), (patch.up, patch.down, patch.alpha, None, None, None))
    if isinstance(patch, FactorPatch):
        adapter_cls = {"lora": LoRAAdapter, "loha": LoHaAdapter, "lokr": LoKrAdapter}[patch.algorithm]
        alpha = patch.parts.get("alpha")
        lora = {f"m.{part}{'.weight' if part.startswith('lora_') else ''}": t for part, t in patch.parts.items()}
        adapter = adapter_cls.load("m", lora, None if alpha is None else alpha.item(), None, set())
        if adapter is None:
            raise ValueError(f"ComfyUI's {adapter_cls.__name__} does not take the parts {sorted(patch.parts)}")
        return adapter
    return ("diff", (patch.diff,))


def add_comfy_patches(model, clip, groups):
    """Clones of ``model`` and ``clip`` carrying ``groups`` (nodes.native.patches.Group) through ComfyUI's own
    ``add_patches``; a key ComfyUI does not take is an error (nothing is loaded in part)."""
    from ..core.errors import LoraDeckError
    from .native.patches import MODEL

    model_out = model.clone()
    clip_out = clip.clone() if clip is not None else None
    for group in groups:
        patcher = model_out if group.target == MODEL else clip_out
        if patcher is None:
            continue
        taken = patcher.add_patches({k: comfy_adapter(p) for k, p in group.patches.items()}, group.strength)
        missed = set(group.patches) - set(taken)
        if missed:
            raise LoraDeckError(f"ComfyUI did not take {len(missed)} of the patches for its {group.target} "
                                f"(e.g. {sorted(map(str, missed))[0]}); nothing was applied")
    return model_out, clip_out
