"""Where a LoRA file's content becomes trusted: every tensor and header value is checked here, once.

``check_tensors`` runs wherever a ``LoraFile`` is made (``files.read_lora_file``, ``sources.in_memory``), so
converters, parsers and matching only ever see:
- keys that are text of at most ``MAX_KEY_CHARS`` characters;
- floating-point tensors (float8 files are widened to bfloat16, exactly; an integer ``alpha`` becomes a
  float; any other integer, bool or complex tensor is refused with its key named);
- tensors without empty dimensions, of at most ``MAX_ELEMENTS`` numbers, with every value finite (one exception:
  an ``alpha`` of +inf, which ai-toolkit writes for full-rank LoKr; ``formats.patch.alpha_of`` refuses it wherever
  it would be used);
- for each part a converter reads (``lora_down``, ``hada_w1_a``, ``alpha``, ...), the number of dimensions the
  trainers write (``PART_DIMS``): a scalar ``lora_down`` or a 2-D ``lora_mid`` never reaches the math.
``check_header`` does the same for the safetensors header: its ``__metadata__`` must map text to text.
JSON inside the header or its fields is parsed by ``safe_json`` only.

Why widen float8 rather than refuse it: some trainers and converters save LoRAs in float8, every float8
value is exactly representable in bfloat16, and torch's CPU kernels (sum, matmul, isfinite) do not take
float8 at all, so refusing would lose nothing in safety and cost users working files.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import LoraFileError

MAX_KEY_CHARS = 512  # the longest real key (an SDXL kohya or PEFT text-encoder key) is ~150
MAX_ELEMENTS = 1 << 30  # per tensor; a full-difference T5 embedding, the largest real one, is ~1.3e8
MAX_METADATA_FIELDS = 10_000
FLOAT8 = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                                           "float8_e8m0fnu") if hasattr(torch, n))
WIDE = torch.bfloat16  # holds every float8 value exactly

# A key's last name part (after dropping ``.weight``/``.default``) -> the numbers of dimensions it may have.
LOW_RANK = (2, 4)
PART_DIMS = {
    "alpha": (0, 1),
    **dict.fromkeys(("lora_down", "lora_up", "lora_A", "lora_B", "down", "up"), LOW_RANK),
    "lora_mid": (4,),
    **dict.fromkeys(("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"), LOW_RANK),
    **dict.fromkeys(("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2_a"), (2,)),
    **dict.fromkeys(("lokr_w2", "lokr_w2_b"), LOW_RANK),
    **dict.fromkeys(("hada_t1", "hada_t2", "lokr_t1", "lokr_t2"), (4,)),
    "diff": (1, 2, 3, 4, 5),  # any parameter's whole difference: a norm's weight, a layer's, a 3-D conv's
    "diff_b": (1,),
    "diff_m": (1, 2, 3),  # a modulation table (lightx2v's Wan files: [1, 6, width])
    **dict.fromkeys(("dora_scale", "lora_magnitude_vector"), (1, 2, 3, 4)),
}
_WRAPPERS = ("weight", "default")
_ADVICE = "The file is damaged or was not written by a LoRA trainer; re-download or re-export it."


def part_of(key: str) -> str:
    """'lora_unet_x.lora_down.weight' -> 'lora_down'; 'a.lora_A.default.weight' -> 'lora_A'; 'x.alpha' -> 'alpha'."""
    pieces = key.split(".")
    while len(pieces) > 1 and pieces[-1] in _WRAPPERS:
        pieces.pop()
    return pieces[-1]


def finite(tensor: torch.Tensor) -> bool:
    """Whether every value is finite, in one reduction (thousands of elementwise checks made loads crawl on a
    busy CPU). Half precision: ``aminmax`` (min and max propagate NaN and show +-inf; a float32 sum converts
    every element and is ~5x slower). Wider floats: any NaN/inf makes the float32 (float64 for float64) sum
    non-finite; only a non-finite sum (NaN, or a huge tensor overflowing) is checked element by element."""
    if tensor.numel() == 0:
        return True
    if tensor.dtype in (torch.float16, torch.bfloat16):
        low, high = torch.aminmax(tensor)
        return bool(torch.isfinite(low) & torch.isfinite(high))
    if torch.isfinite(tensor.sum(dtype=torch.float64 if tensor.dtype == torch.float64 else torch.float32)):
        return True
    return bool(torch.isfinite(tensor).all())


def _shown(key: str) -> str:
    return repr(key if len(key) <= 100 else key[:97] + "...")


def _dtype(path: str, key: str, tensor: torch.Tensor) -> torch.Tensor:
    """The tensor in a dtype the math takes, or LoraFileError naming the key."""
    if tensor.dtype in FLOAT8:
        return tensor.to(WIDE)
    if tensor.is_floating_point():
        return tensor
    if part_of(key) == "alpha" and not tensor.is_complex() and tensor.dtype != torch.bool:
        return tensor.to(torch.float64)  # an integer alpha (some converters write one) is still an alpha
    raise LoraFileError(path, f"holds {_shown(key)} as {str(tensor.dtype).removeprefix('torch.')}, not floating point",
                        "LoRA weights are floating-point numbers; " + _ADVICE)


def _shape(path: str, key: str, tensor: torch.Tensor) -> None:
    dims = PART_DIMS.get(part_of(key))
    if dims is not None and tensor.dim() not in dims and not (dims == (0, 1) and tensor.numel() == 1):
        wanted = " or ".join(f"{d}-D" for d in dims)
        raise LoraFileError(path, f"holds {_shown(key)} with shape {list(tensor.shape)}; a {part_of(key)} is {wanted}",
                            _ADVICE)
    if dims == (0, 1) and tensor.numel() != 1:
        raise LoraFileError(path, f"holds {_shown(key)} with {tensor.numel()} values; an alpha is one number", _ADVICE)
    if 0 in tensor.shape:
        raise LoraFileError(path, f"holds {_shown(key)} with an empty dimension {list(tensor.shape)}", _ADVICE)
    if tensor.numel() > MAX_ELEMENTS:
        raise LoraFileError(path, f"holds {_shown(key)} with {tensor.numel()} values (limit {MAX_ELEMENTS})", _ADVICE)


def check_tensor(path: str, key, tensor, known_finite: bool = False) -> torch.Tensor:
    """One entry of a file, checked and in a dtype the math takes (see the module docstring); ``known_finite``:
    its values were checked already, with others, in one pass (``files.reading``: a run of one dtype)."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise LoraFileError(path, f"has a key that is not a name of 1 to {MAX_KEY_CHARS} characters: "
                            f"{str(key)[:60]!r}", _ADVICE)
    if not isinstance(tensor, torch.Tensor):
        raise LoraFileError(path, f"maps {_shown(key)} to {type(tensor).__name__}, not a tensor", _ADVICE)
    tensor = _dtype(path, key, tensor)
    _shape(path, key, tensor)
    if part_of(key) == "alpha" and bool(torch.isposinf(tensor).all()):
        return tensor  # full-rank LoKr (ai-toolkit: 9999999999, inf in fp16); formats.patch.alpha_of decides
    if not known_finite and not finite(tensor):
        raise LoraFileError(path, f"contains NaN or infinite values in {_shown(key)}",
                            "The file is damaged or was saved from a diverged training run; do not use it.")
    return tensor


def check_tensors(path: str, tensors: Mapping, known_finite=frozenset()) -> dict[str, torch.Tensor]:
    """Every entry checked; a new dict (float8 widened, integer alphas as floats), or LoraFileError.
    ``known_finite``: keys whose values are known finite already."""
    return {key: check_tensor(path, key, tensor, key in known_finite) for key, tensor in tensors.items()}


def check_metadata(path: str, metadata) -> dict[str, str]:
    """A safetensors ``__metadata__`` (absent = empty): it must map text to text, as the format says."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        raise LoraFileError(path, "has a __metadata__ header that does not map text to text",
                            "safetensors metadata holds text only; " + _ADVICE)
    if len(metadata) > MAX_METADATA_FIELDS:
        raise LoraFileError(path, f"has {len(metadata)} metadata fields (limit {MAX_METADATA_FIELDS})", _ADVICE)
    return dict(metadata)
