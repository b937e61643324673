"""Reading LoRA files safely, once.

Files are checked (size, header bytes, tensor count) before parsing, read fully into memory
(never left memory-mapped: a file changed on disk later cannot crash the process) and hashed
while they are parsed. Caching is the adapter store's job (store.py), not this module's.

Pickle files (.pt/.ckpt/.bin/.pth) are refused unless the caller opts in (``allow_pickle=True``,
which the runtime passes from the ``LORADECK_ALLOW_PICKLE`` setting); then they are read with
``torch.load(weights_only=True)`` only, passed explicitly so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
cannot turn it off. Never a fallback: the suffix alone decides how a file is read.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType

import torch
from safetensors.torch import load as load_safetensors_bytes

from .errors import LoraFileError

log = logging.getLogger(__name__)

SAFE_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_TENSORS = 50_000
MAX_FILE_BYTES = 8 * 1024**3

_PICKLE_ADVICE = (
    "Pickle files can run code when loaded, so LoRA Deck reads .safetensors only. Convert it once on a machine "
    "you trust, e.g. python -c \"import torch, safetensors.torch as s; "
    "s.save_file(torch.load('in.pt', weights_only=True), 'out.safetensors')\" "
    "(or set LORADECK_ALLOW_PICKLE=1 to read such files with torch.load(weights_only=True))"
)


@dataclass(frozen=True)
class FileStamp:
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class LoraFile:
    """A parsed file: content hash, header metadata and tensors (in memory, read-only by convention).

    ``companion`` is the stamp of a PEFT ``adapter_config.json`` read with it (its content is in ``metadata``)."""

    path: str
    sha256: str
    size: int
    metadata: MappingProxyType
    tensors: MappingProxyType
    companion: FileStamp | None = None


PEFT_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PEFT_CONFIG, PEFT_CONFIG_KEY = "adapter_config.json", "loradeck.peft_config"
MAX_CONFIG_BYTES = 1024 * 1024


def companion_stamp(path: str) -> FileStamp | None:
    """The stamp of the ``adapter_config.json`` beside a PEFT ``adapter_model.*`` file, or None."""
    if os.path.basename(path) not in PEFT_WEIGHTS:
        return None
    config = os.path.join(os.path.dirname(path), PEFT_CONFIG)
    return stamp(config) if os.path.isfile(config) else None


def peft_companion(path: str) -> tuple[FileStamp, str] | None:
    """The ``adapter_config.json`` beside a PEFT ``adapter_model.*`` file (stamp, text), or None."""
    found = companion_stamp(path)
    if found is None:
        return None
    config = found.path
    if found.size > MAX_CONFIG_BYTES:
        raise LoraFileError(config, f"is {found.size} bytes (limit {MAX_CONFIG_BYTES})", "This is not a PEFT config.")
    with open(found.path, "rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)
    try:
        return found, raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LoraFileError(config, "is not UTF-8 text", "Re-save the adapter with peft's save_pretrained.") from None


def stamp(path: str) -> FileStamp:
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise LoraFileError(path, "file not found", "Check the name and that the file is in your loras folder.") \
            from None
    except OSError as exc:
        raise LoraFileError(path, f"cannot be read ({exc.strerror})", "Check the file's permissions.") from None
    if not os.path.isfile(real):
        raise LoraFileError(path, "is not a file", "Pick a .safetensors file, not a folder.")
    return FileStamp(real, st.st_size, st.st_mtime_ns)


def allowed_suffixes(allow_pickle: bool = False) -> tuple[str, ...]:
    """File name endings LoRA Deck reads: .safetensors, plus the pickle ones when opted in."""
    return SAFE_SUFFIXES + (PICKLE_SUFFIXES if allow_pickle else ())


def is_pickle(path: str) -> bool:
    return path.lower().endswith(PICKLE_SUFFIXES)


def check_suffix(path: str, allow_pickle: bool = False) -> None:
    lower = path.lower()
    if is_pickle(lower) and not allow_pickle:
        raise LoraFileError(path, "is a pickle file", _PICKLE_ADVICE)
    if not lower.endswith(allowed_suffixes(allow_pickle)):
        raise LoraFileError(path, "is not a .safetensors file", "LoRA Deck reads LoRA weights from .safetensors files.")


def parse_header(path: str, head: bytes, size: int) -> dict:
    """Validate and decode a safetensors header from the file's first bytes."""
    bad = "Re-download the file; it is truncated or not a safetensors file."
    if size < 8:
        raise LoraFileError(path, f"is {size} bytes long, too short to be a safetensors file", bad)
    (length,) = struct.unpack("<Q", head[:8])
    if length > MAX_HEADER_BYTES:
        raise LoraFileError(path, f"declares a {length}-byte header (limit {MAX_HEADER_BYTES})", bad)
    if 8 + length > size:
        raise LoraFileError(path, f"declares a {length}-byte header but the file has {size} bytes", bad)
    try:
        header = json.loads(head[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoraFileError(path, f"has an unreadable header ({exc})", bad) from None
    if not isinstance(header, dict):
        raise LoraFileError(path, "has a header that is not a JSON object", bad)
    count = len(header) - ("__metadata__" in header)
    if count > MAX_TENSORS:
        raise LoraFileError(path, f"lists {count} tensors (limit {MAX_TENSORS})", bad)
    return header


def read_metadata(path: str, allow_pickle: bool = False) -> dict[str, str]:
    """The safetensors ``__metadata__`` of a file, reading only its header (pickle files have none)."""
    check_suffix(path, allow_pickle)
    st = stamp(path)
    if is_pickle(path):
        return {}
    with open(st.path, "rb") as f:
        head = f.read(8)
        if len(head) == 8:
            (length,) = struct.unpack("<Q", head)
            head += f.read(min(length, MAX_HEADER_BYTES + 1))
    meta = parse_header(path, head, st.size).get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def _safetensors(path: str, data: bytes) -> tuple[dict, dict[str, str]]:
    header = parse_header(path, data[: 8 + MAX_HEADER_BYTES], len(data))
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as exc:  # safetensors raises its own SafetensorError and others for bad bytes
        raise LoraFileError(path, f"is corrupt ({exc})", "Re-download the file.") from None
    return tensors, {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}


def _pickle(path: str, data: bytes) -> tuple[dict, dict[str, str]]:
    """Tensors from an opted-in pickle file: ``weights_only=True`` always, a flat name -> tensor dict."""
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # the weights-only unpickler refuses anything but tensors and plain containers
        raise LoraFileError(path, f"cannot be read as weights only ({type(exc).__name__}: {str(exc)[:200]})",
                            _PICKLE_ADVICE) from None
    if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in loaded.items()):
        raise LoraFileError(path, "does not hold a flat name -> tensor dictionary", "Re-export it as .safetensors.")
    if len(loaded) > MAX_TENSORS:
        raise LoraFileError(path, f"holds {len(loaded)} tensors (limit {MAX_TENSORS})", "This is not a LoRA file.")
    return {k: v.detach().contiguous() for k, v in loaded.items()}, {}


_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loradeck-sha256")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()  # hashlib releases the GIL: this overlaps with parsing


def read_lora_file(path: str, allow_pickle: bool = False) -> tuple[FileStamp, LoraFile]:
    """Read, hash and parse one .safetensors (or, when opted in, pickle) file fully into memory.

    Returns the stamp the file had when read (the hash index records the hash under it)."""
    check_suffix(path, allow_pickle)
    st = stamp(path)
    if st.size > MAX_FILE_BYTES:
        raise LoraFileError(path, f"is {st.size} bytes (limit {MAX_FILE_BYTES})", "This is not a LoRA-sized file.")
    with open(st.path, "rb") as f:
        data = f.read()
    digest = _HASHER.submit(_sha256, data)
    tensors, meta = (_pickle if is_pickle(path) else _safetensors)(path, data)
    if not tensors:
        raise LoraFileError(path, "contains no tensors", "The file is empty; re-download or re-export it.")
    companion = peft_companion(path)
    if companion is not None:
        meta[PEFT_CONFIG_KEY] = companion[1]
    return st, LoraFile(path=path, sha256=digest.result(), size=len(data), metadata=MappingProxyType(meta),
                        tensors=MappingProxyType(tensors), companion=companion[0] if companion else None)
