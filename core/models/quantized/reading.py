"""Reading one part of a model file: dense tensors, and the Linear weights that stay quantized.

``.safetensors`` parts may hold ComfyUI's fp8 formats (``comfy_fp8``): their scales and markers are read and
checked, their fp8 Linear weights become ``QuantWeight``s, nvfp4 layers are dequantized (nothing keeps them in
4 bits). ``.gguf`` files (denoisers, ComfyUI-GGUF's layout) are read by the bounded reader (``gguf``): F32, F16
and BF16 tensors are dense, every quantized 2-D weight stays in its blocks. Which candidates really stay quantized
is decided when the model is built (``loading``): only those that land on a Linear layer.
"""

from __future__ import annotations

import logging
import os

import torch

from ...errors import PipelineLoadError
from ..arch import Header
from .comfy_fp8 import FP8_DTYPES, MARKER, QuantFileError, dequant_nvfp4, enclosing, read_scheme
from .gguf import GGUFError, GGUFFile, load_tensor, read_gguf, read_raw
from .gguf_blocks import DEQUANT_TYPES, dequantize_raw
from .linear import QuantWeight

log = logging.getLogger(__name__)

GGUF_SUFFIX = ".gguf"
_DENSE = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def is_gguf(path: str) -> bool:
    return path.lower().endswith(GGUF_SUFFIX)


def refused(path: str, problem: str) -> PipelineLoadError:
    return PipelineLoadError(f"{os.path.basename(path)!r} is refused: {problem}. The file is damaged, or was not "
                             "written by ComfyUI / ComfyUI-GGUF; re-download it or use the model's fp16/bf16 release")


def _gguf(path: str) -> GGUFFile:
    try:
        return read_gguf(path)
    except GGUFError as exc:
        raise refused(path, f"not a GGUF file LoRA Deck reads ({exc})") from None
    except OSError as exc:
        raise PipelineLoadError(f"{path!r} cannot be read ({exc.strerror or exc})") from None


def gguf_header(path: str) -> Header:
    """A GGUF file's tensor names with their dense (torch) shapes, as detection reads a safetensors header."""
    gf = _gguf(path)
    shapes = {name: tuple(info.shape) for name, info in gf.tensors.items()}
    dtypes = {name: f"GGML_{info.type_name}" for name, info in gf.tensors.items()}
    metadata = {k: str(v)[:200] for k, v in gf.metadata.items() if isinstance(v, (str, int, float, bool))}
    return Header(path, shapes, dtypes, metadata, lambda key: load_tensor(gf, key))


def read_part(header: Header, keys: list[str], rename: tuple[str, str], dtype: torch.dtype,
              read_tensors) -> tuple[dict, dict]:
    """``(dense tensors, {weight key: QuantWeight})`` for ``keys`` of the file, keys renamed (old, new prefix);
    ``read_tensors(path, keys)`` reads safetensors tensors. Hostile quantization data raises PipelineLoadError."""
    if is_gguf(header.path):
        tensors, quant = _gguf_part(header.path, keys, dtype)
    else:
        tensors, quant = _safetensors_part(header, keys, rename[0], dtype, read_tensors)
    old, new = rename
    return ({new + k[len(old):]: v for k, v in tensors.items()}, {new + k[len(old):]: v for k, v in quant.items()})


def _safetensors_part(header: Header, keys: list[str], prefix: str, dtype, read_tensors) -> tuple[dict, dict]:
    def small(names):
        return read_tensors(header.path, names)

    try:
        shapes = {k: header.shapes[k] for k in keys}
        # a scaled_fp8 marker enclosing the part (a text encoder file's root marker over its model.* keys)
        shapes.update({p + MARKER: header.shapes[p + MARKER] for p in enclosing(prefix) if p + MARKER in header.shapes})
        scheme = read_scheme(shapes, header.dtypes, header.metadata, prefix, small)
    except QuantFileError as exc:
        raise refused(header.path, f"{exc.key}: {exc.problem}") from None
    layers = scheme.layers if scheme else {}
    drop = scheme.drop if scheme else frozenset()
    tensors = read_tensors(header.path, [k for k in keys if k not in drop])
    quant = {}
    for name, layer in layers.items():
        key = name + ".weight"
        if layer.fmt == "nvfp4":
            tensors[key] = _nvfp4(header, layer, tensors.pop(key), small([layer.block_scale])[layer.block_scale],
                                  dtype)
            continue
        weight = tensors.pop(key)
        quant[key] = QuantWeight(weight, tuple(weight.shape), layer.fmt, layer.scale)
    for key in keys:  # plain fp8 (no scale): ComfyUI uses weight.to(D)
        if key in tensors and header.dtypes.get(key) in FP8_DTYPES and key.endswith(".weight") \
                and len(header.shapes[key]) == 2:
            weight = tensors.pop(key)
            quant[key] = QuantWeight(weight, tuple(weight.shape), FP8_DTYPES[header.dtypes[key]])
    if scheme:
        log.info("%s: ComfyUI %s, %d quantized layers", os.path.basename(header.path), scheme.kind, len(layers))
    return tensors, quant


def _nvfp4(header: Header, layer, packed: torch.Tensor, blocks: torch.Tensor, dtype) -> torch.Tensor:
    values = blocks.view(torch.float8_e4m3fn).to(torch.float32)
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        raise refused(header.path, f"{layer.block_scale}: nvfp4 block scales must be finite and not negative")
    rows, cols = packed.shape[0], packed.shape[1] * 2
    return dequant_nvfp4(packed, layer.scale, blocks, (rows, cols), dtype)


def _gguf_part(path: str, keys: list[str], dtype) -> tuple[dict, dict]:
    gf = _gguf(path)
    tensors, quant = {}, {}
    try:
        for name, raw in read_raw(gf, keys):
            info = gf.tensors[name]
            kind = info.type_name
            if 0 in info.shape:  # a weight with no rows or columns: no model has one
                raise refused(path, f"tensor {name!r} has the empty shape {list(info.shape)}")
            if kind in _DENSE:
                tensors[name] = raw.view(_DENSE[kind]).reshape(info.shape)
            elif kind == "F64":
                tensors[name] = dequantize_raw(raw, info.type_id, info.shape)
            elif kind not in DEQUANT_TYPES:
                raise refused(path, f"tensor {name!r} is {kind}, which LoRA Deck cannot dequantize (it reads "
                                    f"{', '.join(DEQUANT_TYPES)})")
            elif len(info.dims) == 2 and tuple(reversed(info.dims)) == info.shape and name.endswith(".weight"):
                quant[name] = QuantWeight(raw.reshape(info.shape[0], -1), info.shape, kind, None, info.type_id)
            else:  # another shape than its rows (orig_shape), or not a matrix: dense, exactly
                tensors[name] = dequantize_raw(raw, info.type_id, info.shape)
    except GGUFError as exc:
        raise refused(path, str(exc)) from None
    except OSError as exc:
        raise PipelineLoadError(f"{path!r} cannot be read ({exc.strerror or exc})") from None
    return tensors, quant
