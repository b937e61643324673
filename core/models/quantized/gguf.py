"""GGUF files (llama.cpp's format, as ComfyUI-GGUF writes denoisers): a bounded reader and exact dequantization.

Reading: every length, count, dimension and offset is checked against the file size before anything is read or
allocated, and tensor data are read with plain bounded reads (never memory-mapped: a file truncated while in use
cannot kill the process), only when asked for; a malformed file raises ``GGUFError`` saying what is wrong. The
``gguf`` package itself (gguf-py) is not used: it memory-maps the file and accepts files this reader refuses
(a big-endian header, 2^40-byte strings, 64-deep arrays, unaligned or overlapping tensors).

Dequantization: float32 results bit-identical to ``gguf.quants.dequantize`` of gguf-py 0.19.0, the reference
implementation (``tests/test_model_files.py`` compares with its stored outputs): F32, F16, BF16, F64, Q4_0, Q4_1,
Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (where a block scale is itself NaN the result is NaN in both, with
possibly other NaN payload bits). ComfyUI-GGUF's default (fp16 block arithmetic) and diffusers' GGUF support
(fp16 results) differ from it in most values; ComfyUI-GGUF with ``dequant_dtype=float32`` equals it. Other GGML
types (IQ*, TQ*, MXFP4, ...) are parsed but not dequantized.

Shapes: GGUF stores dims innermost first (ne[0] = row length); the torch shape is ``reversed(dims)``, as in
ComfyUI-GGUF and gguf-py. A ``comfy.gguf.orig_shape.<name>`` INT32 array (ComfyUI-GGUF's convert.py writes it for
SD 1.x / SDXL tensors it reshapes) overrides it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import torch

from .gguf_blocks import GGML_TYPES, dequantize_raw

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 8                 # GGML_MAX_DIMS is 4, but ComfyUI-GGUF tools/fix_5d_tensors.py writes 5-D F32
                             # tensors (Wan / HunyuanVideo patch_embedding) and its loader reads them
MAX_NAME_BYTES = 4096        # llama.cpp allows 63 (GGML_MAX_NAME 64); ComfyUI-GGUF writes up to 127
MAX_ARRAY_DEPTH = 4

# value type id -> (name, struct format or None)
_VTYPES = {0: ("UINT8", "<B"), 1: ("INT8", "<b"), 2: ("UINT16", "<H"), 3: ("INT16", "<h"), 4: ("UINT32", "<I"),
           5: ("INT32", "<i"), 6: ("FLOAT32", "<f"), 7: ("BOOL", "<B"), 8: ("STRING", None), 9: ("ARRAY", None),
           10: ("UINT64", "<Q"), 11: ("INT64", "<q"), 12: ("FLOAT64", "<d")}


class GGUFError(ValueError):
    pass


@dataclass
class TensorInfo:
    name: str
    type_id: int
    dims: tuple[int, ...]      # GGUF order, ne[0] first
    offset: int                # relative to the data section
    abs_offset: int
    n_elements: int
    n_bytes: int
    shape: tuple[int, ...]     # torch order (reversed dims, or comfy.gguf.orig_shape)

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.type_id][0]


@dataclass
class GGUFFile:
    path: str
    version: int
    alignment: int
    data_offset: int
    file_size: int
    metadata: dict = field(default_factory=dict)        # key -> python value (arrays as tuples)
    metadata_types: dict = field(default_factory=dict)  # key -> "UINT32" / "ARRAY[STRING]" ...
    tensors: dict = field(default_factory=dict)         # name -> TensorInfo, file order

    @property
    def architecture(self):
        return self.metadata.get("general.architecture")


class _Cursor:
    """Bounds-checked sequential reader over an open file (plain reads: nothing mapped, nothing exported)."""

    def __init__(self, f, size):
        self.f, self.size, self.pos = f, size, 0

    def need(self, n, what):
        if n < 0 or self.pos + n > self.size:
            raise GGUFError(f"truncated file: {what} needs {n} bytes at offset {self.pos}, file has {self.size}")

    def read(self, n, what):
        self.need(n, what)
        data = self.f.read(n)
        if len(data) != n:
            raise GGUFError(f"short read: {what}")
        self.pos += n
        return data

    def unpack(self, fmt, what):
        return struct.unpack(fmt, self.read(struct.calcsize(fmt), what))[0]

    def string(self, what, limit=None):
        n = self.unpack("<Q", f"{what} length")
        if limit is not None and n > limit:
            raise GGUFError(f"{what} is {n} bytes (limit {limit})")
        raw = self.read(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GGUFError(f"{what} is not UTF-8: {e}") from None


def _read_value(cur: _Cursor, vtype: int, key: str, depth: int = 0):
    if vtype not in _VTYPES:
        raise GGUFError(f"metadata {key!r}: unknown value type {vtype}")
    name, fmt = _VTYPES[vtype]
    if fmt is not None:
        v = cur.unpack(fmt, f"metadata {key!r}")
        if vtype == 7:
            if v not in (0, 1):
                raise GGUFError(f"metadata {key!r}: BOOL byte {v}")
            v = bool(v)
        return v, name
    if vtype == 8:
        return cur.string(f"metadata {key!r} string"), name
    # array
    if depth >= MAX_ARRAY_DEPTH:
        raise GGUFError(f"metadata {key!r}: arrays nested deeper than {MAX_ARRAY_DEPTH}")
    etype = cur.unpack("<I", f"metadata {key!r} array type")
    count = cur.unpack("<Q", f"metadata {key!r} array count")
    if etype not in _VTYPES:
        raise GGUFError(f"metadata {key!r}: unknown array element type {etype}")
    ename, efmt = _VTYPES[etype]
    min_size = struct.calcsize(efmt) if efmt else (8 if etype == 8 else 12)
    if count > (cur.size - cur.pos) // min_size:
        raise GGUFError(f"metadata {key!r}: array of {count} {ename} exceeds the file")
    if efmt is not None and etype != 7:
        n = struct.calcsize(efmt)
        vals = struct.unpack(f"<{count}{efmt[1]}", cur.read(n * count, f"metadata {key!r} array"))
        return tuple(vals), f"ARRAY[{ename}]"
    out = []
    sub = ename
    for _ in range(count):
        v, sub = _read_value(cur, etype, key, depth + 1)
        out.append(v)
    return tuple(out), f"ARRAY[{sub if etype == 9 else ename}]"


def read_gguf(path: str | os.PathLike) -> GGUFFile:
    """Parse header, metadata and tensor infos; validate every tensor's type, shape and byte range."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 24:
            raise GGUFError(f"{size} bytes: too small for a GGUF header")
        return _parse(path, f, size)


def _parse(path, f, size) -> GGUFFile:
    cur = _Cursor(f, size)
    if cur.read(4, "magic") != GGUF_MAGIC:
        raise GGUFError("not a GGUF file (bad magic)")
    version = cur.unpack("<I", "version")
    if version & 0xFFFF == 0 and version != 0:
        raise GGUFError("big-endian GGUF files are not supported")
    if version not in (2, 3):
        raise GGUFError(f"GGUF version {version} not supported (2, 3)")
    n_tensors = cur.unpack("<Q", "tensor count")
    n_kv = cur.unpack("<Q", "metadata count")
    if n_kv > (size - cur.pos) // 13:     # key len 8 + >=1 byte key... + type 4 + >=1 byte value
        raise GGUFError(f"metadata count {n_kv} exceeds the file")
    gf = GGUFFile(path=path, version=version, alignment=DEFAULT_ALIGNMENT, data_offset=0, file_size=size)
    for _ in range(n_kv):
        key = cur.string("metadata key", limit=65535)
        if key in gf.metadata:
            raise GGUFError(f"duplicate metadata key {key!r}")
        vtype = cur.unpack("<I", f"metadata {key!r} type")
        gf.metadata[key], gf.metadata_types[key] = _read_value(cur, vtype, key)
    if n_tensors > (size - cur.pos) // 32:   # name len 8 + n_dims 4 + >=1 dim 8 + type 4 + offset 8
        raise GGUFError(f"tensor count {n_tensors} exceeds the file")
    if "general.alignment" in gf.metadata:
        if gf.metadata_types["general.alignment"] != "UINT32":
            raise GGUFError("general.alignment must be UINT32")
        al = gf.metadata["general.alignment"]
        if al == 0 or al & (al - 1):
            raise GGUFError(f"general.alignment {al} is not a power of two")
        gf.alignment = al
    raw_infos = []
    for i in range(n_tensors):
        name = cur.string(f"tensor {i} name", limit=MAX_NAME_BYTES)
        n_dims = cur.unpack("<I", f"tensor {name!r} n_dims")
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFError(f"tensor {name!r}: {n_dims} dims (1..{MAX_DIMS})")
        dims = tuple(cur.unpack("<Q", f"tensor {name!r} dim") for _ in range(n_dims))
        type_id = cur.unpack("<I", f"tensor {name!r} type")
        offset = cur.unpack("<Q", f"tensor {name!r} offset")
        raw_infos.append((name, dims, type_id, offset))
    data_offset = cur.pos + (-cur.pos) % gf.alignment
    gf.data_offset = data_offset
    spans = []
    for name, dims, type_id, offset in raw_infos:
        if name in gf.tensors:
            raise GGUFError(f"duplicate tensor name {name!r}")
        if type_id not in GGML_TYPES:
            raise GGUFError(f"tensor {name!r}: unknown GGML type {type_id}")
        tname, bs, ts = GGML_TYPES[type_id]
        n_el = 1
        for d in dims:
            if d > (1 << 62) // max(n_el, 1):
                raise GGUFError(f"tensor {name!r}: dims {dims} overflow")
            n_el *= d
        if dims[0] % bs:
            raise GGUFError(f"tensor {name!r}: row length {dims[0]} not a multiple of the {tname} block {bs}")
        n_bytes = n_el // bs * ts
        if offset % gf.alignment:
            raise GGUFError(f"tensor {name!r}: offset {offset} not aligned to {gf.alignment}")
        start = data_offset + offset
        if offset > size or n_bytes > size or start + n_bytes > size:
            raise GGUFError(f"tensor {name!r}: bytes [{start}, {start + n_bytes}) beyond the file ({size})")
        shape = tuple(reversed(dims))
        ok = f"comfy.gguf.orig_shape.{name}"
        if ok in gf.metadata:
            if gf.metadata_types[ok] != "ARRAY[INT32]":
                raise GGUFError(f"{ok}: expected ARRAY[INT32], got {gf.metadata_types[ok]}")
            osh = tuple(gf.metadata[ok])
            p = 1
            for d in osh:
                if d < 0:
                    raise GGUFError(f"{ok}: negative dim")
                p *= d
            if p != n_el or len(osh) > 8:
                raise GGUFError(f"{ok}: {osh} does not hold {n_el} elements")
            shape = osh
        gf.tensors[name] = TensorInfo(name, type_id, dims, offset, start, n_el, n_bytes, shape)
        if n_bytes:
            spans.append((start, start + n_bytes, name))
    spans.sort()
    for (_a0, a1, an), (b0, _b1, bn) in zip(spans, spans[1:], strict=False):
        if b0 < a1:
            raise GGUFError(f"tensors {an!r} and {bn!r} overlap")
    return gf


def read_raw(gf: GGUFFile, names):
    """``(name, uint8 tensor of its bytes)`` for each of ``names``, in that order, from one open of the file (plain
    reads into fresh buffers: nothing stays mapped)."""
    with open(gf.path, "rb") as f:
        if os.fstat(f.fileno()).st_size != gf.file_size:
            raise GGUFError("the file changed since its header was read")
        for name in names:
            ti = gf.tensors[name]
            buffer = bytearray(ti.n_bytes)
            f.seek(ti.abs_offset)
            if f.readinto(buffer) != ti.n_bytes:
                raise GGUFError(f"tensor {name!r}: short read")
            yield name, torch.frombuffer(buffer, dtype=torch.uint8) if ti.n_bytes else torch.empty(0, dtype=torch.uint8)


def load_tensor(gf: GGUFFile, name: str, dequantize: bool = True) -> torch.Tensor:
    """float32 (bit-equal to gguf.quants.dequantize) in the torch shape; ``dequantize=False``: the raw bytes,
    shape (rows, bytes per row)."""
    ti = gf.tensors[name]
    raw = next(read_raw(gf, [name]))[1]
    if not dequantize:
        rows = ti.n_elements // ti.dims[0] if ti.dims[0] else 0
        return raw.reshape(rows, -1) if rows else raw
    return dequantize_raw(raw, ti.type_id, ti.shape)
