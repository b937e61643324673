"""Loading pipelines (diffusers folders, single files, built-in tiny models) and a runtime's cache of owners."""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections import OrderedDict

import torch

from ..adapters.owner import PipelineOwner
from ..errors import PipelineLoadError
from ..families import BUILTIN_SUFFIX, BUILTINS, family_for_class, family_of
from ..files import safe_json
from ..files.reading import SAFE_SUFFIXES

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_CHOICES = ("auto", *DTYPES)
MAX_INDEX_BYTES = 1024 * 1024  # a model_index.json is a few hundred bytes


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise PipelineLoadError(f"dtype must be one of {list(DTYPE_CHOICES)}, got {name!r}")
    return DTYPES[name]


def read_model_index(folder: str) -> dict:
    index = os.path.join(folder, "model_index.json")
    if not os.path.isfile(index):
        raise PipelineLoadError(f"{folder!r} has no model_index.json; pick a diffusers model folder "
                                "(saved with save_pretrained), not a single checkpoint file")
    try:
        with open(index, "rb") as f:
            value = safe_json.loads(f.read(MAX_INDEX_BYTES + 1), MAX_INDEX_BYTES)
    except (OSError, safe_json.UntrustedJsonError) as exc:
        raise PipelineLoadError(f"{index!r} cannot be read ({exc}); the model folder is damaged") from None
    if not isinstance(value, dict):
        raise PipelineLoadError(f"{index!r} is not a JSON object; the model folder is damaged")
    return value


def _dtype_keyword() -> str:
    # diffusers 0.42 renamed from_pretrained's torch_dtype to dtype (the old name warns).
    import diffusers

    major, minor = (int(p) for p in diffusers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (0, 42) else "torch_dtype"


def load_folder(folder: str, dtype: torch.dtype, device: torch.device):
    from diffusers import DiffusionPipeline

    index = read_model_index(folder)
    family = family_for_class(str(index.get("_class_name")))  # refuse unsupported families before loading
    kwargs = {"safety_checker": None, "requires_safety_checker": False} if "safety_checker" in index else {}
    # components saved as None (SD3 without T5) must be passed as None again to reload
    kwargs.update({k: None for k, v in index.items() if isinstance(v, list) and v == [None, None]})
    kwargs[_dtype_keyword()] = dtype
    if family.folder_components is not None:
        kwargs.update(family.folder_components(folder, index))
    try:
        pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True, **kwargs)
    except Exception as exc:  # diffusers raises many types for damaged folders
        raise PipelineLoadError(f"diffusers could not load {folder!r}: {_why(index, exc)}") from exc
    return pipe.to(device)


def _why(index: dict, exc: Exception) -> str:
    """The loader's error, or, when a transformers processor could not be made because torchvision is missing
    (FLUX.2 [dev]'s PixtralProcessor: transformers stands in a placeholder class), what to install."""
    import importlib.util

    text = str(exc)
    if importlib.util.find_spec("torchvision") is not None or not ("Placeholder" in text or "torchvision" in text):
        return text
    processors = [f"{name} ({spec[1]})" for name, spec in index.items()
                  if isinstance(spec, list) and len(spec) == 2 and spec[0] == "transformers"
                  and str(spec[1]).endswith("Processor")]
    if not processors:
        return text
    return (f"its {', '.join(processors)} needs torchvision, which is not installed (transformers makes that "
            "processor only with it): install the torchvision build that matches your torch (CPU or CUDA)")


def build_pipeline(model: str, dtype_name: str = "auto", device: torch.device | None = None,
                   config_folders: tuple[str, ...] = (), local_files=None, tokenizer_dirs: tuple[str, ...] = ()):
    """A pipeline object for a built-in name (``tiny-sd (built-in)``), a diffusers folder path, or a
    single-file checkpoint (configured from the pack's own config folders; ``local_files`` says where its
    tokenizers and separate text encoders / VAE are, default: ComfyUI's layout around the file, plus
    ``config_folders`` for tokenizers; ``tokenizer_dirs`` are searched for tokenizers first)."""
    device = device or default_device()
    dtype = resolve_dtype(dtype_name, device)
    name = model[: -len(BUILTIN_SUFFIX)] if model.endswith(BUILTIN_SUFFIX) else model
    if name in BUILTINS:
        pipe = BUILTINS[name].tiny()
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                # built-ins are float32 already; passing dtype anyway makes diffusers warn
                component.to(device) if dtype == torch.float32 else component.to(device=device, dtype=dtype)
    elif model.lower().endswith(SAFE_SUFFIXES) or os.path.isfile(model):
        from .single_file import LocalFiles, load_single_file

        files = local_files or LocalFiles.beside(model, tokenizer_dirs=config_folders)
        pipe = load_single_file(model, dtype, device, files.tokenizers_first(tokenizer_dirs))
    else:
        pipe = load_folder(model, dtype, device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class PipelineRegistry:
    """A runtime's loaded pipelines, keyed by (model, dtype); least recently used goes first.

    Each owner gets a stable id (``p1``, ``p2``, ...) the panel keys it by. A pipeline is built outside
    the registry's lock, so reading the list (the panel) never waits for a model to load.
    """

    def __init__(self, runtime, capacity: int):
        self.runtime = runtime
        self.capacity = capacity
        self._owners: OrderedDict[tuple[str, str], PipelineOwner] = OrderedDict()
        self._lock = threading.Lock()
        self._building = threading.Lock()  # one pipeline built at a time
        self._ids = itertools.count(1)

    def new_id(self) -> str:
        return f"p{next(self._ids)}"

    def get(self, model: str, dtype_name: str = "auto", config_folders: tuple[str, ...] = (),
            local_files=None) -> PipelineOwner:
        key = (model, dtype_name)
        with self._building:
            with self._lock:
                owner = self._owners.get(key)
                if owner is not None:
                    self._owners.move_to_end(key)
                    return owner
            pipe = build_pipeline(model, dtype_name, config_folders=config_folders, local_files=local_files,
                                  tokenizer_dirs=self.runtime.settings.tokenizer_dirs)
            label = f"{os.path.basename(model.rstrip('/'))} [{dtype_name}]"
            owner = PipelineOwner(pipe, family_of(pipe), label, self.runtime, self.new_id())
            with self._lock:
                self._owners[key] = owner
                dropped = []
                while len(self._owners) > self.capacity:
                    dropped.append(self._owners.popitem(last=False)[1])
        for old in dropped:
            self._forget(old)
        return owner

    def _forget(self, owner: PipelineOwner) -> None:
        self.runtime.store.drop_pipeline(owner.id)
        log.info("released pipeline %s (%s)", owner.label, owner.id)

    def release(self, pipeline_id: str) -> bool:
        """Drop one pipeline from the cache (the next use loads it again); False if no such id."""
        with self._lock:
            key = next((k for k, o in self._owners.items() if o.id == pipeline_id), None)
            owner = self._owners.pop(key) if key is not None else None
        if owner is not None:
            self._forget(owner)
        return owner is not None

    def owners(self) -> tuple[PipelineOwner, ...]:
        with self._lock:
            return tuple(self._owners.values())

    def clear(self) -> None:
        for owner in self.owners():
            self.release(owner.id)
