"""Reading LoRA files safely, once.

Files are checked (size, header bytes, tensor count) before parsing, read fully into memory
(never left memory-mapped: a file changed on disk later cannot crash the process) and hashed
while they are read; a .safetensors file's tensors are views of that memory, each header entry checked as the
format requires first (no second copy). Caching is the adapter store's job (store.py), not this module's.

Pickle files (.pt/.ckpt/.bin/.pth) are refused unless the caller opts in (``allow_pickle=True``,
which the runtime passes from the ``LORADECK_ALLOW_PICKLE`` setting); then they are read with
``torch.load(weights_only=True)`` only, passed explicitly so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
cannot turn it off. Never a fallback: the suffix alone decides how a file is read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import stat as stat_mode
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType

import torch

from ..errors import LoraFileError
from . import safe_json
from .checks import FLOAT8, check_metadata, check_tensors, finite

log = logging.getLogger(__name__)

SAFE_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_TENSORS = 50_000
MAX_FILE_BYTES = 8 * 1024**3
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux; a longer "path" is not one
MAX_HEADER_DEPTH = 8  # a header is {name: {dtype, shape: [...], data_offsets: [...]}}: depth 3

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
    # SHA-256 of the bytes after the safetensors header (A1111's hash; files/hashing.py): known for in-memory and
    # pickle files; "" for a .safetensors file read from disk (HashIndex.a1111 streams it when asked)
    tensors_sha256: str = ""


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
    raw = read_bytes(config, found.path, MAX_CONFIG_BYTES)
    try:
        return found, raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LoraFileError(config, "is not UTF-8 text", "Re-save the adapter with peft's save_pretrained.") from None


def unusable(name, limit: int) -> str | None:
    """Why ``name`` cannot be a file name anyone meant (empty, too long, control characters), or None."""
    if not isinstance(name, str):
        return f"it is {type(name).__name__}, not text"
    if not name.strip():
        return "it is empty"
    if len(name) > limit:
        return f"it is over {limit} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it contains control characters (e.g. a NUL byte)"
    return None


NAME_ADVICE = "Pick a LoRA file from the list, or type its name as it appears there."


def check_path(path, limit: int = MAX_PATH_CHARS) -> str:
    """``path`` if it can name a file, else LoraFileError "not a usable LoRA name" (never a ValueError later)."""
    why = unusable(path, limit)
    if why:
        raise LoraFileError(repr(path)[:80], f"is not a usable LoRA name ({why})", NAME_ADVICE)
    return path


_NOT_REGULAR = "it is a FIFO, socket or device, not a regular file"
_UNUSABLE_ERRNOS = {errno.ELOOP: "it is a symlink loop", errno.ENAMETOOLONG: "it is too long for the file system"}


def stamp(path: str) -> FileStamp:
    """The file's real path, size and mtime; LoraFileError when it is missing, a folder, a symlink loop,
    a FIFO or device, or not a name at all."""
    check_path(path)
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise LoraFileError(path, "file not found", "Check the name and that the file is in your loras folder.") \
            from None
    except OSError as exc:
        if exc.errno in _UNUSABLE_ERRNOS:
            raise LoraFileError(path, f"is not a usable LoRA name ({_UNUSABLE_ERRNOS[exc.errno]})", NAME_ADVICE) \
                from None
        raise LoraFileError(path, f"cannot be read ({exc.strerror})", "Check the file's permissions.") from None
    if stat_mode.S_ISDIR(st.st_mode):
        raise LoraFileError(path, "is not a file", "Pick a .safetensors file, not a folder.")
    if not stat_mode.S_ISREG(st.st_mode):
        raise LoraFileError(path, f"is not a usable LoRA name ({_NOT_REGULAR})", NAME_ADVICE)
    return FileStamp(real, st.st_size, st.st_mtime_ns)


@contextlib.contextmanager
def open_regular(path: str, real: str):
    """The regular file ``real`` opened for reading (``path`` is the name shown in errors).

    Opened without following a symlink and without blocking, then checked to be a regular file: a file
    swapped for a FIFO or a link after it was checked cannot hang or redirect the read."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise LoraFileError(path, f"cannot be read ({exc.strerror})", "Check the file and its permissions.") \
            from None
    with os.fdopen(fd, "rb") as f:
        if not stat_mode.S_ISREG(os.fstat(fd).st_mode):
            raise LoraFileError(path, f"is not a usable LoRA name ({_NOT_REGULAR})", NAME_ADVICE)
        try:
            yield f
        except OSError as exc:
            raise LoraFileError(path, f"cannot be read ({exc.strerror})", "Check the disk and the file.") from None


def read_bytes(path: str, real: str, limit: int) -> bytes:
    """Up to ``limit`` + 1 bytes of the regular file ``real`` (see ``open_regular``)."""
    with open_regular(path, real) as f:
        return f.read(limit + 1)


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
    """Validate and decode a safetensors header from the file's first bytes (bounded JSON, ``__metadata__``
    text to text; the tensor entries themselves are checked by safetensors when the data is loaded)."""
    bad = "Re-download the file; it is truncated or not a safetensors file."
    if size < 8:
        raise LoraFileError(path, f"is {size} bytes long, too short to be a safetensors file", bad)
    (length,) = struct.unpack("<Q", head[:8])
    if length > MAX_HEADER_BYTES:
        raise LoraFileError(path, f"declares a {length}-byte header (limit {MAX_HEADER_BYTES})", bad)
    if 8 + length > size:
        raise LoraFileError(path, f"declares a {length}-byte header but the file has {size} bytes", bad)
    try:
        header = safe_json.loads(head[8 : 8 + length], MAX_HEADER_BYTES, MAX_HEADER_DEPTH)
    except safe_json.UntrustedJsonError as exc:
        raise LoraFileError(path, f"has an unreadable header ({exc})", bad) from None
    if not isinstance(header, dict):
        raise LoraFileError(path, "has a header that is not a JSON object", bad)
    count = len(header) - ("__metadata__" in header)
    if count > MAX_TENSORS:
        raise LoraFileError(path, f"lists {count} tensors (limit {MAX_TENSORS})", bad)
    header["__metadata__"] = check_metadata(path, header.get("__metadata__"))
    return header


def read_metadata(path: str, allow_pickle: bool = False) -> dict[str, str]:
    """The safetensors ``__metadata__`` of a file, reading only its header (pickle files have none)."""
    check_suffix(check_path(path), allow_pickle)
    st = stamp(path)
    if is_pickle(path):
        return {}
    with open_regular(path, st.path) as f:
        head = f.read(8)
        if len(head) == 8:
            (length,) = struct.unpack("<Q", head)
            head += f.read(min(length, MAX_HEADER_BYTES + 1))
    return parse_header(path, head, st.size)["__metadata__"]


# safetensors dtype names -> torch dtypes (safetensors.torch's own table; checks.py then refuses the non-float
# ones by key, and widens float8)
DTYPES = {name: getattr(torch, attr) for name, attr in (
    ("F64", "float64"), ("F32", "float32"), ("F16", "float16"), ("BF16", "bfloat16"), ("I64", "int64"),
    ("I32", "int32"), ("I16", "int16"), ("I8", "int8"), ("U8", "uint8"), ("BOOL", "bool"), ("C64", "complex64"),
    ("F8_E4M3", "float8_e4m3fn"), ("F8_E4M3FNUZ", "float8_e4m3fnuz"), ("F8_E5M2", "float8_e5m2"),
    ("F8_E5M2FNUZ", "float8_e5m2fnuz"), ("U64", "uint64"), ("U32", "uint32"), ("U16", "uint16"))
    if hasattr(torch, attr)}
MAX_DIMS = 8
_CORRUPT = "Re-download the file."


def _entry(path: str, key: str, entry, body: int) -> tuple[torch.dtype, list[int], int, int]:
    """One header entry checked against the format: (dtype, shape, start, end) in the data after the header."""
    def corrupt(why: str) -> LoraFileError:
        return LoraFileError(path, f"is corrupt ({why} in the header entry {key[:100]!r})", _CORRUPT)

    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise corrupt("not a {dtype, shape, data_offsets} object")
    dtype = DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if dtype is None:
        raise corrupt(f"dtype {str(entry['dtype'])[:20]!r} is not one LoRA Deck reads")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(type(n) is int and 0 <= n < 1 << 40 for n in shape)):
        raise corrupt(f"shape {str(shape)[:40]} is not a list of at most {MAX_DIMS} sizes")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(n) is int for n in offsets):
        raise corrupt("data_offsets is not [start, end]")
    start, end = offsets
    numel = 1
    for n in shape:
        numel *= n
    if not 0 <= start <= end <= body or end - start != numel * dtype.itemsize:
        raise corrupt(f"data_offsets {offsets} do not hold {numel} {entry['dtype']} values within the "
                      f"{body} data bytes")
    return dtype, shape, start, end


def _safetensors(path: str, data: memoryview) -> tuple[dict, dict[str, str]]:
    """Tensors as views of ``data`` (a writable buffer: no copy; a value not aligned to its size is copied), after
    checking every header entry as the safetensors format requires: known dtype, offsets that tile the data
    exactly."""
    view = data
    (length,) = struct.unpack("<Q", view[:8]) if len(data) >= 8 else (0,)
    header = parse_header(path, bytes(view[: 8 + min(length, MAX_HEADER_BYTES)]), len(data))
    base = 8 + length
    body = len(data) - base
    entries = sorted(((_entry(path, key, entry, body), key) for key, entry in header.items() if key != "__metadata__"),
                     key=lambda found: found[0][2:])
    covered = 0
    for (_dtype, _shape, start, end), key in entries:
        if start != covered:
            why = "overlaps the one before it" if start < covered else f"leaves bytes {covered}-{start} unused"
            raise LoraFileError(path, f"is corrupt (the data of {key[:100]!r} {why})", _CORRUPT)
        covered = end
    if covered != body:
        raise LoraFileError(path, f"is corrupt (its tensors hold {covered} of the {body} data bytes)", _CORRUPT)
    tensors, known_finite = {}, set()
    for run in _runs(entries, base):
        (dtype, _, first, _), _ = run[0]
        last = run[-1][0][3]
        if last == first:  # empty tensors only (refused by check_tensors)
            tensors.update((key, torch.empty(shape, dtype=dtype)) for (_, shape, _, _), key in run)
            continue
        whole = torch.frombuffer(data, dtype=dtype, count=(last - first) // dtype.itemsize, offset=base + first) \
            if (base + first) % dtype.itemsize == 0 else \
            torch.frombuffer(bytearray(view[base + first : base + last]), dtype=dtype)  # misaligned: a copy
        for (_, shape, start, end), key in run:
            a, b = (start - first) // dtype.itemsize, (end - first) // dtype.itemsize
            tensors[key] = whole[a:b].view(shape)
        if dtype.is_floating_point and dtype not in FLOAT8 and finite(whole):
            known_finite.update(key for _, key in run)
    return check_tensors(path, tensors, known_finite), header["__metadata__"]


def _runs(entries: list, base: int) -> list[list]:
    """The (offset-ordered) entries in runs of one dtype: each run is read as one tensor and its entries are views
    of it, so whatever works on a whole file's factors (a finiteness check here, a cast to the pipeline's dtype
    when injected: ``adapters.peft_ops``) is one operation on one storage, not one per tensor."""
    runs: list[list] = []
    for entry in entries:
        if runs and runs[-1][-1][0][0] == entry[0][0]:
            runs[-1].append(entry)
        else:
            runs.append([entry])
    return runs


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
    return check_tensors(path, {k: v.detach().contiguous() for k, v in loaded.items()}), {}


_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loradeck-sha256")
CHUNK = 8 * 1024 * 1024


def _read_hashing(path: str, st: FileStamp) -> tuple[memoryview, Future]:
    """The file's bytes, read in chunks into one buffer (not zero-filled first, as a ``bytearray`` would be: every
    page written once), each chunk hashed (SHA-256, on the hasher thread, in order; hashlib releases the GIL) while
    the next is read: the digest is ready about when the read ends. A file whose size changes while it is read is
    refused (it is still being written)."""
    view = memoryview(torch.empty(st.size, dtype=torch.uint8).numpy()).cast("B")  # uninitialised
    digest, got = hashlib.sha256(), 0
    with open_regular(path, st.path) as f:
        while got < st.size:
            n = f.readinto(view[got : got + CHUNK])
            if not n:
                break
            _HASHER.submit(digest.update, view[got : got + n])
            got += n
        grew = bool(f.read(1))
    done = _HASHER.submit(digest.hexdigest)
    if got != st.size or grew:
        done.result()  # the hasher is done with the buffer
        raise LoraFileError(path, "changed while it was read", "Wait until the file is completely written, "
                            "then run again.")
    return view, done


def read_lora_file(path: str, allow_pickle: bool = False, ahead=None) -> tuple[FileStamp, LoraFile]:
    """Read, hash and parse one .safetensors (or, when opted in, pickle) file fully into memory.

    Returns the stamp the file had when read (the hash index records the hash under it). A1111's hash of a
    .safetensors file (its bytes after the header) is left to ``HashIndex.a1111``, which streams it only when
    something asks (a saved image's ``Lora hashes``): no second hash on the load path. ``ahead(tensors,
    metadata)``, if given, runs once the file is parsed, while the hasher thread finishes the digest (the
    conversion of a new file: work that does not need the hash, done in the time the hash takes)."""
    check_suffix(check_path(path), allow_pickle)
    st = stamp(path)
    if st.size > MAX_FILE_BYTES:
        raise LoraFileError(path, f"is {st.size} bytes (limit {MAX_FILE_BYTES})", "This is not a LoRA-sized file.")
    data, digest = _read_hashing(path, st)
    try:
        tensors, meta = (_pickle if is_pickle(path) else _safetensors)(path, data)
        if not tensors:
            raise LoraFileError(path, "contains no tensors", "The file is empty; re-download or re-export it.")
        companion = peft_companion(path)
        if companion is not None:
            meta[PEFT_CONFIG_KEY] = companion[1]
        if ahead is not None:
            ahead(MappingProxyType(tensors), MappingProxyType(meta))
    finally:
        sha256 = digest.result()  # the hasher is done with the buffer before anything is raised
    return st, LoraFile(path=path, sha256=sha256, size=len(data), metadata=MappingProxyType(meta),
                        tensors=MappingProxyType(tensors), companion=companion[0] if companion else None,
                        tensors_sha256=sha256 if is_pickle(path) else "")
