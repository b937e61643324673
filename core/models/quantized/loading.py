"""Building a model whose Linear weights stay quantized, with diffusers' own single-file converters.

diffusers' loaders cast every weight to the model's dtype, so the quantized weights never reach them. Instead:

1. a meta skeleton of the model (no memory) gives the module table: each original (BFL / SAI / ComfyUI) layer name
   -> the diffusers Linear(s) holding its rows (``Family.original_names`` for denoisers, the same names for text
   encoders); a quantized weight whose layer lands on Linear layers of its size stays quantized, any other
   (an embedding, a conv, a layer the table does not know) is dequantized exactly before conversion;
2. the kept weights are replaced by placeholders that cost no memory (one NaN value, expanded), and the model is
   built by the same diffusers converter as a dense file (fused layers are split by rows, renamed, ...);
3. each Linear that got a placeholder becomes a ``QuantizedLinear`` holding its rows of the stored weight (fp8
   rows and GGUF block rows split exactly), and no placeholder may remain anywhere.
"""

from __future__ import annotations

import logging

import torch

from ...errors import PipelineLoadError
from ..original_names import RowSplit
from .linear import QuantizedLinear, QuantWeight

log = logging.getLogger(__name__)

Targets = tuple[tuple[str, tuple[tuple[int, int], ...]], ...]  # (module name, its rows in the stored weight)


def skeleton(cls, config_dir: str, component: str) -> torch.nn.Module:
    """The model of ``cls`` configured from ``config_dir/component`` on the meta device (no weights allocated)."""
    import diffusers

    with torch.device("meta"):
        if issubclass(cls, diffusers.ModelMixin):
            return cls.from_config(cls.load_config(config_dir, subfolder=component))
        return cls(cls.config_class.from_pretrained(config_dir, subfolder=component))


def same_names(model: torch.nn.Module) -> dict[str, str]:
    """A text encoder's table: its files use the model's own module names (with or without ``text_model.``)."""
    table = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            table[name] = name
            table.setdefault(name.removeprefix("text_model."), name)
            table.setdefault("text_model." + name, name)
    return table


def _targets(table: dict, layer: str) -> Targets | None:
    target = table.get(layer)
    if isinstance(target, str):
        return ((target, ()),)
    if isinstance(target, RowSplit):
        return target.parts
    return None


def plan(quant: dict[str, QuantWeight], table: dict, model: torch.nn.Module, prefix: str) -> dict[str, Targets]:
    """Which quantized weights stay quantized: key -> the Linear modules (and rows) they become."""
    modules = dict(model.named_modules())
    kept = {}
    for key, weight in quant.items():
        targets = _targets(table, key[len(prefix): -len(".weight")]) if key.startswith(prefix) else None
        if targets is None:
            continue
        rows = 0
        for name, ranges in targets:
            module = modules.get(name)
            size = sum(b - a for a, b in ranges) if ranges else getattr(module, "out_features", -1)
            if type(module) is not torch.nn.Linear or module.in_features != weight.shape[1] \
                    or module.out_features != size:
                break
            rows += size
        else:
            if rows == weight.shape[0]:
                kept[key] = tuple((name, ranges or ((0, weight.shape[0]),)) for name, ranges in targets)
    return kept


def _dtype_for(key: str, dtype: torch.dtype, keep_fp32) -> torch.dtype:
    # as diffusers' loaders do: modules a class keeps in float32 stay so in a float16 model
    if dtype == torch.float16 and keep_fp32 and any(m in key.split(".") for m in keep_fp32):
        return torch.float32
    return dtype


def with_placeholders(tensors: dict, quant: dict[str, QuantWeight], kept: dict, dtype: torch.dtype,
                      keep_fp32=()) -> dict:
    """The tensors a dense build takes: kept weights as placeholders, the other quantized weights dequantized."""
    out = dict(tensors)
    nan = {}
    for key, weight in quant.items():
        want = _dtype_for(key, dtype, keep_fp32)
        if key in kept:
            value = nan.setdefault(want, torch.full((), float("nan"), dtype=want))
            out[key] = value.expand(weight.shape)
        else:
            out[key] = weight.dequantize(want)
    return out


def install(model: torch.nn.Module, quant: dict[str, QuantWeight], kept: dict, label: str) -> int:
    """Put a QuantizedLinear with its rows of the stored weight wherever a kept weight landed."""
    count = 0
    for key, targets in kept.items():
        for name, ranges in targets:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            old = parent._modules[child]
            if type(old) is not torch.nn.Linear:
                raise PipelineLoadError(f"{label}: {name} is a {type(old).__name__} after conversion, not the "
                                        f"Linear its quantized weight {key} was planned for")
            parent._modules[child] = QuantizedLinear(quant[key].rows(ranges), old.bias, old.weight.dtype)
            count += 1
    check_placed(model, label)
    return count


def check_placed(model: torch.nn.Module, label: str) -> None:
    """No placeholder (an expanded or NaN-filled weight) may be left: it would compute garbage silently."""
    for name, param in model.named_parameters():
        if param.numel() > 1 and all(s == 0 for s in param.stride()):
            raise PipelineLoadError(f"{label}: {name} got no weight (a quantized weight LoRA Deck could not place)")
        if param.is_floating_point() and param.numel() and bool(torch.isnan(param.reshape(-1)[0])):
            raise PipelineLoadError(f"{label}: {name} is NaN after loading (a quantized weight LoRA Deck could not "
                                    "place, or a damaged file)")


def summary(model: torch.nn.Module) -> str:
    """What stays quantized in ``model``: ``"38 Linear layers in GGUF Q4_K, 4 in GGUF Q6_K (1.2 of 5.1 MB)"``."""
    kinds: dict[str, int] = {}
    stored = dense = 0
    for module in model.modules():
        if isinstance(module, QuantizedLinear):
            kinds[module.quantized] = kinds.get(module.quantized, 0) + 1
            stored += module.stored.numel() * module.stored.element_size()
            dense += module.in_features * module.out_features * module.stand_in.element_size()
    if not kinds:
        return "nothing quantized"
    parts = ", ".join(f"{n} in {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return f"{sum(kinds.values())} Linear layers kept quantized ({parts}): {stored / 2**20:.1f} MiB instead of " \
           f"{dense / 2**20:.1f} MiB"
