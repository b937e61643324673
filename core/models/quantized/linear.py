"""Linear weights kept as the file stores them (fp8 + scale, GGUF blocks), dequantized exactly at each use.

``QuantizedLinear`` is an ``nn.Linear`` (so peft wraps it in its own ``lora.Linear`` and a LoRA runs unfused on top,
``W·x + s·B(A·x)``) that holds no dense weight: its forward dequantizes the stored weight to the input's dtype, as
ComfyUI does (fp8: ``weight.to(D) * scale.to(D)``; GGUF: gguf-py's float32 values, then ``.to(D)``), and reading
``.weight`` gives that dense weight in the model's dtype (a new tensor each time: writing to it changes nothing,
which is why fusing into these layers is refused, ``core.adapters.fusion``).

Why not diffusers' ``enable_layerwise_casting``: it stores a whole module (bias included) in the storage dtype
and upcasts it with no scale, so it can hold a plain fp8 weight but neither a scaled one nor a GGUF block, and it
rounds every bf16 bias to fp8. Here only the Linear weights the file quantized stay quantized; biases, norms,
embeddings and convolutions are dense in the model's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .comfy_fp8 import FP8_FORMATS, dequant_fp8
from .gguf_blocks import GGML_TYPES, dequantize_raw


@dataclass(frozen=True, eq=False)
class QuantWeight:
    """One Linear weight as stored: ``data`` is fp8 (out, in) for ComfyUI's formats or uint8 (out, bytes per row)
    for GGUF blocks; ``shape`` the dense (out, in)."""

    data: torch.Tensor
    shape: tuple[int, int]
    kind: str  # "float8_e4m3fn" | "float8_e5m2" | a GGML type name ("Q4_K")
    scale: float | None = None  # fp8: the per-tensor scale (float32 value); None: plain fp8 (ComfyUI: weight.to(D))
    type_id: int = -1  # GGUF: the GGML type

    @property
    def label(self) -> str:
        if self.kind in FP8_FORMATS:
            return f"fp8 {self.kind[len('float8_'):]}" + (" scaled" if self.scale is not None else "")
        return f"GGUF {self.kind}"

    @property
    def bits(self) -> float:
        if self.kind in FP8_FORMATS:
            return 8.0
        _, block, size = GGML_TYPES[self.type_id]
        return size * 8 / block

    def dequantize(self, dtype: torch.dtype) -> torch.Tensor:
        """The dense weight ComfyUI computes in ``dtype`` (ComfyUI-GGUF with ``dequant_dtype=float32`` for GGUF)."""
        if self.kind in FP8_FORMATS:
            return dequant_fp8(self.data, self.scale, dtype, self.kind)
        return dequantize_raw(self.data, self.type_id, self.shape).to(dtype)

    def rows(self, ranges) -> QuantWeight:
        """The rows ``ranges`` ((start, end), ...) in order: each stored row holds one output row, for fp8 and for
        GGUF blocks alike (blocks run along a row), so a fused layer's parts stay quantized and exact."""
        parts = [self.data[a:b] for a, b in ranges]
        data = parts[0] if len(parts) == 1 else torch.cat(parts)
        return replace(self, data=data, shape=(sum(b - a for a, b in ranges), self.shape[1]))


class QuantizedLinear(torch.nn.Linear):
    """An ``nn.Linear`` whose weight stays quantized in memory (see the module docstring)."""

    def __init__(self, weight: QuantWeight, bias: torch.nn.Parameter | None, dtype: torch.dtype):
        torch.nn.Module.__init__(self)  # nn.Linear's own __init__ would allocate a dense weight
        self.out_features, self.in_features = weight.shape
        self.kind, self.scale, self.type_id = weight.kind, weight.scale, weight.type_id
        self.register_buffer("stored", weight.data, persistent=False)
        # a tensor with the dense weight's dtype and device and no values: follows .to(), read by LoRA placement
        self.register_buffer("stand_in", torch.empty(0, dtype=dtype, device=weight.data.device), persistent=False)
        self.register_parameter("bias", bias)

    @property
    def quantized(self) -> str:
        """What the layer keeps in memory ("fp8 e4m3fn scaled", "GGUF Q4_K"); dense layers have no such attribute."""
        return self.stored_weight.label

    @property
    def stored_weight(self) -> QuantWeight:
        return QuantWeight(self.stored, (self.out_features, self.in_features), self.kind, self.scale, self.type_id)

    @property
    def weight(self) -> torch.Tensor:  # type: ignore[override]
        return self.stored_weight.dequantize(self.stand_in.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype if x.is_floating_point() else self.stand_in.dtype
        bias = self.bias if self.bias is None or self.bias.dtype == dtype else self.bias.to(dtype)
        return F.linear(x, self.stored_weight.dequantize(dtype), bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"weight={self.quantized}")
