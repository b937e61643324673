"""ComfyUI's quantized safetensors formats, read as ComfyUI 0.8.0 reads them, and refused where they are hostile.

Three layouts mark which Linear weights are quantized (ComfyUI's ``QUANTIZATION.md``, ``comfy/quant_ops.py``,
``comfy/utils.py::convert_old_quants``, ``comfy/ops.py::MixedPrecisionOps``):

- **legacy scaled fp8** (``*_fp8_e4m3fn_scaled.safetensors``): a ``<prefix>scaled_fp8`` marker tensor, and per layer
  ``L.weight`` (fp8) + ``L.scale_weight`` (float32 scalar) [+ ``L.scale_input``]. ComfyUI 0.8.0 treats every such layer
  as ``float8_e4m3fn``, whatever the marker's dtype;
- **per-layer ``comfy_quant``**: ``L.comfy_quant`` (a uint8 tensor of UTF-8 JSON such as ``{"format":
  "float8_e4m3fn"}``) + ``L.weight`` + ``L.weight_scale`` [+ ``L.input_scale``]; nvfp4 layers add ``L.weight_scale_2``
  and keep block scales in ``L.weight_scale``;
- **``_quantization_metadata``** in the header: ``{"layers": {L: {"format": ...}}}`` instead of the tensors (it wins
  over a legacy marker, as in ComfyUI).

A file with fp8 tensors and none of these is **plain fp8** (``t5xxl_fp8_e4m3fn.safetensors``): ComfyUI uses such a
weight as ``weight.to(D)``. Dequantization (``QuantWeight.dequantize``) is ComfyUI's arithmetic to the bit:
``weight.to(storage).to(D) * scale.to(float32).to(D)`` for fp8, comfy-kitchen's for nvfp4, ``D`` being the compute
dtype. What makes ComfyUI crash, or silently compute other weights than the file's author meant (a scale of 0, NaN,
inf, negative or with more than one element, legacy scales without their marker, unknown or missing formats,
hostile JSON), is refused here with the key and the reason; what ComfyUI would only value-cast is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...files import safe_json

log = logging.getLogger(__name__)

MARKER = "scaled_fp8"
FP8_FORMATS = {"float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}
FORMATS = (*FP8_FORMATS, "nvfp4")  # comfy/quant_ops.py QUANT_ALGOS of ComfyUI 0.8.0
# safetensors dtype names of the header
FP8_DTYPES = {"F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")
MAX_LAYER_JSON = 1024  # a comfy_quant entry is a few dozen bytes
_LAYER_KEYS = {"format", "full_precision_matrix_mult"}
_SUFFIXES = (".comfy_quant", ".weight_scale", ".weight_scale_2", ".input_scale", ".scale_weight", ".scale_input")


class QuantFileError(ValueError):
    """A quantized file LoRA Deck refuses: ``key`` and what is wrong with it."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


@dataclass(frozen=True)
class Layer:
    """One quantized Linear: its weight key (``L.weight``), format and per-tensor scale (float32 value)."""

    name: str
    fmt: str
    scale: float | None  # fp8: the weight scale; nvfp4: weight_scale_2 (the per-tensor scale)
    block_scale: str = ""  # nvfp4: the key of its swizzled fp8 block scales


@dataclass(frozen=True)
class Scheme:
    """What a part of a file quantizes and how: its layers, and the keys that are no weights of the model."""

    kind: str  # for messages: "scaled fp8 (scaled_fp8 marker)", "comfy_quant", "_quantization_metadata"
    layers: dict[str, Layer]
    drop: frozenset[str]


def fp8_keys(dtypes: dict, keys) -> list[str]:
    """The keys among ``keys`` whose tensors the header says are fp8."""
    return [k for k in keys if dtypes.get(k) in FP8_DTYPES]


def read_scheme(shapes: dict, dtypes: dict, metadata: dict, prefix: str,
                read: Callable[[list[str]], dict]) -> Scheme | None:
    """The quantization of the keys under ``prefix`` (None: none marked; plain fp8 tensors are not a scheme).

    ``shapes`` / ``dtypes`` / ``metadata`` come from the header; ``read(keys)`` reads a few small tensors (scales,
    comfy_quant JSON), only after the header has shown they are small. Raises QuantFileError."""
    keys = [k for k in shapes if k.startswith(prefix)]
    raw_meta = metadata.get("_quantization_metadata")
    # ComfyUI converts the keys under the prefix its marker has: a text encoder file's own root marker covers the
    # model.* keys its part is read from, a checkpoint's text_encoders.<kind>.transformer.scaled_fp8 its encoder
    marker = next((p + MARKER for p in enclosing(prefix) if p + MARKER in shapes), prefix + MARKER)
    if raw_meta is not None:
        confs, kind = _metadata_layers(raw_meta), "_quantization_metadata"
    elif marker in shapes:
        confs, kind = _legacy_layers(shapes, dtypes, marker, keys), f"scaled fp8 ({MARKER} marker)"
    else:
        quant_keys = [k for k in keys if k.endswith(".comfy_quant")]
        if not quant_keys:
            legacy = [k for k in keys if k.endswith((".scale_weight", ".scale_input"))]
            if legacy:
                raise QuantFileError(legacy[0], f"{len(legacy)} legacy fp8 scales without a {MARKER} marker: ComfyUI "
                                                "would ignore them and use the fp8 weights unscaled")
            return None
        confs, kind = _tensor_layers(shapes, dtypes, quant_keys, read), "comfy_quant"
    layers = {}
    for name, conf in confs.items():
        if not name.startswith(prefix):
            continue  # another part of an all-in-one file
        layers[name] = _layer(name, conf, shapes, dtypes, read, legacy=kind.startswith("scaled"))
    drop = {k for k in keys if k.endswith(_SUFFIXES) or k == marker}
    _orphans(drop, layers, shapes)
    return Scheme(kind, layers, frozenset(drop))


def enclosing(prefix: str) -> list[str]:
    """``prefix`` and the key prefixes enclosing it, longest first: "a.b." -> ["a.b.", "a.", ""]."""
    parts = prefix.split(".")[:-1]
    return [".".join(parts[:n]) + "." if n else "" for n in range(len(parts), -1, -1)]


def _json(text, where: str, limit: int):
    try:
        return safe_json.loads(text, limit, max_depth=8)
    except safe_json.UntrustedJsonError as exc:
        raise QuantFileError(where, f"is not JSON LoRA Deck reads ({exc})") from None


def _metadata_layers(raw: str) -> dict:
    value = _json(raw, "_quantization_metadata", safe_json.MAX_CHARS)
    if not isinstance(value, dict) or not isinstance(value.get("layers"), dict):
        raise QuantFileError("_quantization_metadata", "must be an object with a 'layers' object")
    return {str(name): conf for name, conf in value["layers"].items()}


def _legacy_layers(shapes: dict, dtypes: dict, marker: str, keys) -> dict:
    if dtypes.get(marker) not in ("F8_E4M3", "F32"):
        raise QuantFileError(marker, f"marker dtype {dtypes.get(marker)}: ComfyUI 0.8.0 treats every layer of a "
                                     "scaled file as float8_e4m3fn and would value-cast other fp8 weights")
    return {k[: -len(".scale_weight")]: {"format": "float8_e4m3fn"} for k in keys if k.endswith(".scale_weight")}


def _tensor_layers(shapes: dict, dtypes: dict, quant_keys: list[str], read) -> dict:
    for key in quant_keys:
        if dtypes.get(key) != "U8" or len(shapes[key]) != 1:
            raise QuantFileError(key, "must be a 1-D uint8 tensor of UTF-8 JSON")
        if shapes[key][0] > MAX_LAYER_JSON:
            raise QuantFileError(key, f"holds {shapes[key][0]} bytes of JSON (limit {MAX_LAYER_JSON})")
    texts = read(quant_keys)
    return {k[: -len(".comfy_quant")]: _json(texts[k].numpy().tobytes(), k, MAX_LAYER_JSON) for k in quant_keys}


def _layer(name: str, conf, shapes: dict, dtypes: dict, read, legacy: bool) -> Layer:
    if not isinstance(conf, dict):
        raise QuantFileError(name, f"its quantization config is {type(conf).__name__}, not an object (ComfyUI 0.8.0 "
                                   "fails on it)")
    fmt = conf.get("format")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise QuantFileError(name, f"format {fmt!r} is unknown to ComfyUI 0.8.0 (known: {', '.join(FORMATS)})")
    unknown = sorted(set(conf) - _LAYER_KEYS)
    if unknown:
        log.warning("%s: unknown comfy_quant keys %s (ComfyUI ignores them)", name, unknown[:5])
    weight = name + ".weight"
    if weight not in shapes:
        raise QuantFileError(weight, "a quantized layer without its weight (ComfyUI: ValueError)")
    if len(shapes[weight]) != 2:
        raise QuantFileError(weight, f"{len(shapes[weight])}-D: only Linear layers are quantized")
    if fmt == "nvfp4":
        return _nvfp4_layer(name, shapes, dtypes, read)
    stored = dtypes.get(weight)
    if stored not in FP8_DTYPES and stored not in FLOAT_DTYPES:
        raise QuantFileError(weight, f"is {stored}: ComfyUI would value-cast the integers to {fmt}, not read the "
                                     "bytes as fp8")
    if stored == "F8_E5M2" and fmt == "float8_e4m3fn":
        raise QuantFileError(weight, "is float8_e5m2 but its format is float8_e4m3fn: ComfyUI would value-cast it "
                                     "(saturating, lossy)")
    if FP8_DTYPES.get(stored) != fmt:
        log.warning("%s is %s, format %s: value-cast to %s at load, as ComfyUI does", weight, stored, fmt, fmt)
    scale_key = name + (".scale_weight" if legacy else ".weight_scale")
    for extra in (name + (".scale_input" if legacy else ".input_scale"),):
        if extra in shapes:
            _scale(extra, shapes, dtypes, read, "input scale")
    return Layer(name, fmt, _scale(scale_key, shapes, dtypes, read, "weight scale"))


def _nvfp4_layer(name: str, shapes: dict, dtypes: dict, read) -> Layer:
    weight, blocks = name + ".weight", name + ".weight_scale"
    if dtypes.get(weight) != "U8":
        raise QuantFileError(weight, f"an nvfp4 weight must be uint8, is {dtypes.get(weight)}")
    rows, cols = shapes[weight][0], shapes[weight][1] * 2
    if rows % 16 or cols % 16:
        raise QuantFileError(weight, f"nvfp4 storage {tuple(shapes[weight])} is not padded to 16 x 16")
    if blocks not in shapes:
        raise QuantFileError(blocks, "missing nvfp4 block scales (ComfyUI: ValueError)")
    if dtypes.get(blocks) not in ("F8_E4M3", "U8"):
        raise QuantFileError(blocks, f"block scales are {dtypes.get(blocks)}; ComfyUI views them as "
                                     "float8_e4m3fn (one byte each)")
    want = (-(-rows // 128) * 128, -(-(cols // 16) // 4) * 4)
    if tuple(shapes[blocks]) != want:
        raise QuantFileError(blocks, f"block scales {tuple(shapes[blocks])}, not the swizzled {want}")
    return Layer(name, "nvfp4", _scale(name + ".weight_scale_2", shapes, dtypes, read, "tensor scale"), blocks)


def _scale(key: str, shapes: dict, dtypes: dict, read, what: str) -> float:
    """A per-tensor scale as its float32 value, refused unless it is one finite positive float."""
    if key not in shapes:
        raise QuantFileError(key, f"missing {what} (ComfyUI fails at the first use of the layer)")
    if dtypes.get(key) not in FLOAT_DTYPES:
        raise QuantFileError(key, f"{what} is {dtypes.get(key)}, not a float")
    count = 1
    for n in shapes[key]:
        count *= n
    if count != 1:
        raise QuantFileError(key, f"{what} has shape {tuple(shapes[key])}; ComfyUI needs one value (it would "
                                  "broadcast it along the weight's last dimension)")
    value = float(read([key])[key].to(torch.float32).reshape(()))
    if value != value or value in (float("inf"), float("-inf")):
        raise QuantFileError(key, f"{what} is {value}: every dequantized weight would be NaN or infinite")
    if value <= 0:
        raise QuantFileError(key, f"{what} is {value}: the weights would be " + ("0" if value == 0 else "negated"))
    return value


def _orphans(drop: set, layers: dict, shapes: dict) -> None:
    for key in drop:
        if key.endswith(".comfy_quant") or key.endswith(MARKER):
            continue
        layer = next(key[: -len(s)] for s in _SUFFIXES if key.endswith(s))
        if layer + ".weight" not in shapes:
            raise QuantFileError(key, "a scale for a layer that has no weight")
        if layer not in layers:
            log.warning("%s: a scale of a layer not marked quantized (ComfyUI leaves it unused)", key)


# -- dequantization, ComfyUI 0.8.0 / comfy-kitchen 0.2.3 arithmetic -------------------------------------------
_E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)


def dequant_fp8(weight: torch.Tensor, scale: float | None, dtype: torch.dtype, fmt: str) -> torch.Tensor:
    """``weight.to(storage)`` (a value cast, as ops.py does) ``.to(D) * scale.to(float32).to(D)``; no scale
    (plain fp8): ``weight.to(D)``."""
    q = weight.to(FP8_FORMATS[fmt])
    if scale is None:
        return q.to(dtype)
    return q.to(dtype) * torch.tensor(scale, dtype=torch.float32).to(dtype)


def _from_blocked(blocked: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """comfy-kitchen's ``from_blocked``: cuBLAS's swizzled block-scale layout back to (rows, cols)."""
    row_blocks, col_blocks = -(-rows // 128), -(-cols // 4)
    out = blocked.reshape(-1, 32, 16).reshape(-1, 32, 4, 4).transpose(1, 2)
    out = out.reshape(row_blocks, col_blocks, 4, 32, 4).reshape(row_blocks, col_blocks, 128, 4).permute(0, 2, 1, 3)
    return out.reshape(row_blocks * 128, col_blocks * 4)[:rows, :cols]


def dequant_nvfp4(packed: torch.Tensor, tensor_scale: float, blocks: torch.Tensor, shape: tuple[int, int],
                  dtype: torch.dtype) -> torch.Tensor:
    """comfy-kitchen's eager ``dequantize_nvfp4`` cropped to the Linear's ``shape``: two E2M1 values per byte (the
    first in the high nibble), times fp8 block scales (one per 16 values) times the per-tensor scale."""
    lut = torch.tensor(_E2M1, dtype=torch.float32).to(dtype)
    values = lut[torch.stack([packed >> 4, packed & 0x0F], dim=-1).view(packed.shape[0], -1).long()]
    rows, cols = values.shape
    block = _from_blocked(blocks.view(torch.float8_e4m3fn), rows, cols // 16)
    total = torch.tensor(tensor_scale, dtype=torch.float32).to(dtype) * block.to(dtype)
    out = (values.reshape(rows, -1, 16) * total.unsqueeze(-1)).view(rows, cols).to(dtype)
    return out[: shape[0], : shape[1]]
