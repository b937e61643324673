"""Building a model whose Linear weights stay quantized, with diffusers' own single-file converters.

diffusers' loaders cast every weight to the model's dtype (and make each one contiguous), so the quantized
weights never go through them. Instead:

1. the model is made with its parameters on the meta device (no memory; buffers real), and its module table gives
   each original (BFL / SAI / ComfyUI) layer name the diffusers Linear(s) holding its rows (``Family.original_names``
   for denoisers, the same names for T5); a quantized weight whose layer lands on Linear layers of its size stays
   quantized, any other (an embedding, a conv, a layer the table does not know) is dequantized exactly;
2. the kept weights are meta placeholders (no memory), and the checkpoint goes through the same converter diffusers'
   ``from_single_file`` uses (fused layers split by rows, renamed, ...); the dense tensors are assigned, not copied;
3. each Linear whose weight was a placeholder becomes a ``QuantizedLinear`` holding its rows of the stored weight
   (fp8 rows and GGUF block rows split exactly); a parameter still on the meta device is an error.

Components this module has no converter for (CLIP, VAEs) are built dense by the caller, their quantized weights
dequantized exactly at load.
"""

from __future__ import annotations

import contextlib
import logging

import torch

from ...errors import PipelineLoadError
from ..original_names import RowSplit
from .linear import QuantizedLinear, QuantWeight

log = logging.getLogger(__name__)

Targets = tuple[tuple[str, tuple[tuple[int, int], ...]], ...]  # (module name, its rows in the stored weight)


@contextlib.contextmanager
def _parameters_on_meta():
    """Modules made inside get their parameters on the meta device (their buffers stay real), as accelerate's
    ``init_empty_weights`` does: a parameter is moved as it is registered, before any initialisation touches it."""
    register = torch.nn.Module.register_parameter

    def on_meta(module, name, param):
        register(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = type(param)(param.to("meta"), requires_grad=param.requires_grad)

    torch.nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register


def empty_model(cls, config_dir: str, component: str, own_names: bool = False):
    """``cls`` configured from ``config_dir/component``, parameters on the meta device; None when this module cannot
    convert a checkpoint for it (see ``convert``). ``own_names``: the family's ``prepare`` gives the tensors in the
    model's own names (a denoiser diffusers has no single-file converter for: Kandinsky 5)."""
    import diffusers
    from transformers import T5EncoderModel, UMT5EncoderModel

    with _parameters_on_meta():
        if issubclass(cls, diffusers.ModelMixin) and (own_names or _mapping(cls) is not None):
            return cls.from_config(cls.load_config(config_dir, subfolder=component))
        if issubclass(cls, (T5EncoderModel, UMT5EncoderModel)):
            return cls(cls.config_class.from_pretrained(config_dir, subfolder=component))
    return None


def _mapping(cls):
    from diffusers.loaders.single_file_model import (
        SINGLE_FILE_LOADABLE_CLASSES,
        _get_single_file_loadable_mapping_class,
    )

    name = _get_single_file_loadable_mapping_class(cls)
    return SINGLE_FILE_LOADABLE_CLASSES[name]["checkpoint_mapping_fn"] if name else None


def convert(model, tensors: dict) -> dict:
    """The checkpoint in diffusers' names, by the converter diffusers' single-file loaders use for this class."""
    from diffusers.loaders.single_file_model import _should_convert_state_dict_to_diffusers
    from diffusers.loaders.single_file_utils import convert_sd3_t5_checkpoint_to_diffusers
    from transformers import T5EncoderModel, UMT5EncoderModel

    if isinstance(model, (T5EncoderModel, UMT5EncoderModel)):
        return convert_sd3_t5_checkpoint_to_diffusers(tensors)
    if _mapping(type(model)) is None or not _should_convert_state_dict_to_diffusers(model.state_dict(), tensors):
        return tensors  # the family's prepare already converted it (or gives the model's own names: own_names)
    return _mapping(type(model))(config=dict(model.config), checkpoint=tensors)


def same_names(model: torch.nn.Module) -> dict[str, str]:
    """A text encoder's table: its files use the model's own module names (with or without ``text_model.``)."""
    table = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            table[name] = name
            table.setdefault(name.removeprefix("text_model."), name)
            table.setdefault("text_model." + name, name)
    return table


def _targets(table: dict, layer: str, modules: dict) -> Targets | None:
    # a family's table lists the names that differ (Z-Image's feed_forward.w1, adaLN_modulation.0 are the same in
    # both layouts): a layer it does not list lands on the Linear of its own name, if the model has one. Should the
    # converter put it elsewhere, install() / check_complete refuse the file; nothing is placed silently.
    target = table.get(layer, layer if type(modules.get(layer)) is torch.nn.Linear else None)
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
        targets = _targets(table, key[len(prefix): -len(".weight")], modules) if key.startswith(prefix) else None
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


def with_placeholders(tensors: dict, quant: dict[str, QuantWeight], kept: dict, dtype: torch.dtype) -> dict:
    """The checkpoint the converter takes: kept weights as meta placeholders, the other quantized weights
    dequantized (ComfyUI's arithmetic in ``dtype``)."""
    out = dict(tensors)
    for key, weight in quant.items():
        out[key] = torch.empty(weight.shape, dtype=dtype, device="meta") if key in kept else weight.dequantize(dtype)
    return out


def load(model, state: dict, dtype: torch.dtype, label: str) -> None:
    """Assign the converted dense tensors (cast to ``dtype``, float32 where the class keeps modules so)."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or ()
    keep = [keep] if isinstance(keep, str) else list(keep)
    dense = {k: (v.to(_dtype_for(k, dtype, keep)) if v.is_floating_point() else v)
             for k, v in state.items() if v.device.type != "meta"}
    result = model.load_state_dict(dense, strict=False, assign=True)
    if result.unexpected_keys:
        log.info("%s: %d keys the model does not use, e.g. %s", label, len(result.unexpected_keys),
                 result.unexpected_keys[:3])
    if hasattr(model, "tie_weights"):
        model.tie_weights()  # T5 keeps its embedding once (shared.weight)


def install(model: torch.nn.Module, quant: dict[str, QuantWeight], kept: dict, dtype: torch.dtype, label: str) -> int:
    """Put a QuantizedLinear with its rows of the stored weight wherever a kept weight landed."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or ()
    keep = [keep] if isinstance(keep, str) else list(keep)
    count = 0
    for key, targets in kept.items():
        for name, ranges in targets:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            old = parent._modules[child]
            if type(old) is not torch.nn.Linear or old.weight.device.type != "meta":
                raise PipelineLoadError(f"{label}: {name} was not left for its quantized weight {key} by the "
                                        "conversion; the file does not have the layout its keys suggest")
            parent._modules[child] = QuantizedLinear(quant[key].rows(ranges), old.bias,
                                                     _dtype_for(name + ".weight", dtype, keep))
            count += 1
    return count


def summary(model: torch.nn.Module) -> str:
    """What stays quantized in ``model``: ``"38 Linear layers kept quantized (38 in GGUF Q4_0): 486 MiB instead of
    1728 MiB"``."""
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
