"""Thin operations on peft LoRA layers: inject, delete, activate with scales.

peft owns the layer types and the forward math; these helpers only decide which adapters are
active where and at what scale. Loading never changes what the model computes: a new
adapter starts inactive and is switched on by ``activate``.

Injection goes straight to the resolved modules: ``matching.prepare`` already knows every real
module name, rank and alpha, so there is nothing for peft's per-module pattern matching to find,
and the weights are the file's tensors, so nothing is randomly initialised only to be overwritten.
The layers built are peft's own (``peft.tuners.lora.Linear`` / ``Conv2d``) with the same
bookkeeping ``update_layer`` writes for a plain LoRA (``tests/test_speed.py`` compares the two).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import torch
from peft import LoraConfig
from peft.tuners.lora import layer as lora_layer
from peft.tuners.tuners_utils import BaseTunerLayer

from ..formats import ModulePatch
from .fusion import ORIGINAL, WeightFn

KEEP = "_loradeck_keep"  # a wrapper that stays even without adapters (the compile envelope's layers)


def lora_layers(model: torch.nn.Module) -> list[tuple[str, BaseTunerLayer]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def adapters_of(layer: BaseTunerLayer) -> set[str]:
    return set(getattr(layer, "lora_A", {}).keys())


def base_weight(layer) -> torch.Tensor:
    """The weight of a peft layer's base module, for its device and dtype, read through the modules' own dicts:
    ``get_base_layer()`` and nn.Module's attribute lookup cost microseconds a call, paid per layer whenever a stack
    changes. A quantized layer (``models.quantized.QuantizedLinear``) answers with its stand-in: a tensor of the
    dense weight's device and dtype with no values (its ``.weight`` would dequantize the whole matrix)."""
    module = layer
    while "base_layer" in module._modules:
        module = module._modules["base_layer"]
    weight = module._parameters.get("weight")
    if weight is None:
        weight = module._buffers.get("stand_in")
    return weight if weight is not None else module.weight


def adapter_weight(layer, key: str) -> torch.Tensor:
    """Adapter ``key``'s down (``lora_A``) weight on a layer, read as ``base_weight`` reads."""
    down = layer._modules["lora_A"]._modules[key]
    weight = down._parameters.get("weight")
    return weight if weight is not None else down.weight


def exact_pattern(name: str) -> str:
    """A rank/alpha pattern key that matches module ``name`` only.

    peft (and diffusers) match pattern keys as ``(.*\\.)?(key)$``, so a plain ``proj_out`` also hits
    ``single_transformer_blocks.0.proj_out``; the look-behind forbids anything before the name.
    """
    return r"(?<![\w.])" + re.escape(name)


def _alpha(patch: ModulePatch) -> float:
    return float(patch.rank if patch.alpha is None else patch.alpha)


def _config(patches: dict[str, ModulePatch]) -> LoraConfig:
    """The adapter's config as peft/diffusers keep it in ``model.peft_config`` (bookkeeping only: the
    layers are built from the patches, never from pattern matching)."""
    ranks = {n: p.rank for n, p in patches.items()}
    alphas = {n: _alpha(p) for n, p in patches.items()}
    r = Counter(ranks.values()).most_common(1)[0][0]
    alpha = Counter(alphas.values()).most_common(1)[0][0]
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=sorted(patches),
        rank_pattern={exact_pattern(n): v for n, v in ranks.items() if v != r},
        alpha_pattern={exact_pattern(n): v for n, v in alphas.items() if v != alpha},
        init_lora_weights=False,
    )


# -- building peft layers without initialising what is overwritten --------------------------------
class _NoInitLinear(torch.nn.Linear):
    def reset_parameters(self) -> None:  # the weight is assigned right after
        pass


class _NoInitConv2d(torch.nn.Conv2d):
    def reset_parameters(self) -> None:
        pass


_MODULE_STATE = frozenset(vars(torch.nn.Module()))  # what nn.Module.__init__ sets: fresh per module
_TEMPLATES: dict[tuple, dict] = {}  # (class, constructor arguments) -> the attributes that class's __init__ sets


def _holding(weight: torch.Tensor, cls, no_init, *args, **kwargs) -> torch.nn.Module:
    """A ``cls`` module (nn.Linear / nn.Conv2d) whose weight is ``weight``, built without running its
    constructor each time: the attributes the constructor sets (sizes, kernel, stride, ...) are taken from
    one no-init instance built on the meta device per argument set, so a module costs one
    ``nn.Module.__init__``, no allocation and no random numbers."""
    signature = (cls, args, tuple(sorted(kwargs.items())))
    attributes = _TEMPLATES.get(signature)
    if attributes is None:
        template = no_init(*args, bias=False, device="meta", **kwargs)
        attributes = {k: v for k, v in vars(template).items() if k not in _MODULE_STATE}
        if len(_TEMPLATES) > 512:
            _TEMPLATES.clear()
        _TEMPLATES[signature] = attributes
    module = cls.__new__(cls)
    torch.nn.Module.__init__(module)
    module.__dict__.update({k: list(v) if isinstance(v, list) else v for k, v in attributes.items()})
    module._parameters["weight"] = torch.nn.Parameter(weight, requires_grad=False)
    module._parameters["bias"] = None
    return module


def _lora_modules(layer, down: torch.Tensor, up: torch.Tensor) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(lora_A, lora_B) as peft's ``update_layer`` makes them for this layer, holding ``down`` / ``up``."""
    base = layer.get_base_layer()
    rank = down.shape[0]
    if isinstance(layer, lora_layer.Conv2d):
        a = _holding(down, torch.nn.Conv2d, _NoInitConv2d, layer.in_features, rank, base.kernel_size, base.stride,
                     base.padding)
        b = _holding(up, torch.nn.Conv2d, _NoInitConv2d, rank, layer.out_features, (1, 1), (1, 1),
                     groups=base.groups)
        return a, b
    a = _holding(down, torch.nn.Linear, _NoInitLinear, layer.in_features, rank)
    b = _holding(up, torch.nn.Linear, _NoInitLinear, rank, layer.out_features)
    return a, b


_WRAPPERS: dict[type, tuple[dict, tuple]] = {}  # peft layer class -> (plain attributes, container modules)


def _wrapper_template(cls, module: torch.nn.Module) -> tuple[dict, tuple]:
    """What ``LoraLayer.__init__`` sets on a ``cls`` wrapper, learnt once by running it: plain attributes
    (empty dicts and lists are made fresh per wrapper) and the container modules (ModuleDict, ...)."""
    found = _WRAPPERS.get(cls)
    if found is None:
        probe = cls.__new__(cls)
        torch.nn.Module.__init__(probe)
        lora_layer.LoraLayer.__init__(probe, module)
        plain = {k: v for k, v in vars(probe).items() if k not in _MODULE_STATE}
        containers = tuple((k, None if k == "base_layer" else type(m)) for k, m in probe._modules.items())
        found = _WRAPPERS[cls] = (plain, containers)
    return found


def _new_wrapper(module: torch.nn.Module) -> BaseTunerLayer | None:
    """peft's LoRA layer around ``module`` with no adapter yet (None for types handled by peft's dispatch).

    The same object ``lora.Linear.__init__`` / ``lora.Conv2d.__init__`` builds minus their ``update_layer``
    call; ``LoraLayer.__init__``'s two dozen attribute writes through ``nn.Module.__setattr__`` are replayed
    from a template (``tests/test_speed.py`` compares the result with peft's own)."""
    if type(module) is torch.nn.Linear or getattr(module, "quantized", None):  # quantized: an nn.Linear subclass
        cls = lora_layer.Linear
    elif type(module) is torch.nn.Conv2d and module.groups == 1 and isinstance(module.padding, tuple):
        cls = lora_layer.Conv2d
    else:
        return None
    plain, containers = _wrapper_template(cls, module)
    layer = cls.__new__(cls)
    torch.nn.Module.__init__(layer)
    layer.__dict__.update({k: type(v)() if isinstance(v, (dict, list)) else v for k, v in plain.items()})
    for name, kind in containers:
        layer._modules[name] = module if kind is None else kind()
    state = layer.__dict__  # plain attributes, as nn.Module.__setattr__ would store them
    if isinstance(module, torch.nn.Linear):  # peft's reader also reads .weight, which a quantized layer dequantizes
        state["in_features"], state["out_features"] = module.in_features, module.out_features
    else:
        state["in_features"], state["out_features"] = layer._get_in_out_features(module)
    if cls is lora_layer.Linear:
        state.update(fan_in_fan_out=False, is_target_conv_1d_layer=False)
    else:
        state.update(_kernel_dim=module.weight.dim(), conv_fn=torch.nn.functional.conv2d)
    state["_active_adapter"] = []
    return layer


_HALVES = (torch.float16, torch.bfloat16)


def _cast(tensor: torch.Tensor, device, dtype: torch.dtype | None) -> torch.Tensor:
    """``tensor.to(device, dtype)``. On the CPU, float16 <-> bfloat16 goes through float32: the same values (the
    widening is exact and the narrowing rounds as the direct cast does), about 3x faster than torch's direct
    cast, which is an unvectorised loop there (a FLUX.2 [klein] 4B-size LoRA: ~0.1 s of each load)."""
    if (dtype in _HALVES and tensor.dtype in _HALVES and tensor.dtype != dtype and tensor.device.type == "cpu"
            and torch.device(device).type == "cpu"):
        tensor = tensor.float()
    return tensor.to(device=device, dtype=dtype)


def _storage_key(tensor: torch.Tensor) -> tuple[int, torch.dtype]:
    return tensor.untyped_storage().data_ptr(), tensor.dtype


_CASTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loradeck-cast")


class _Casts:
    """The factors ``_cast_storages`` casts a whole storage at a time. Views of the cast storages are handed out
    at once (``take``) and the casts themselves run on a worker thread (``start``) while the layers are built in
    Python; ``finish`` waits for them (re-raising what they raised) and only then copies the factors used more
    than once, so nothing reads a cast before it is written."""

    def __init__(self):
        self.views: dict[int, tuple[torch.Tensor, bool]] = {}  # id(factor) -> (its cast, handed out yet)
        self.copies: list[tuple[torch.Tensor, torch.Tensor]] = []  # (output, source storage) of each cast
        self._later: list[tuple[torch.Tensor, torch.Tensor]] = []  # (copy, view) for factors used again
        self._running = None

    def __len__(self) -> int:
        return len(self.views)

    def again(self, view: torch.Tensor) -> torch.Tensor:
        copy = torch.empty_like(view)
        self._later.append((copy, view))
        return copy

    def take(self, factor: torch.Tensor) -> torch.Tensor | None:
        """``factor``'s cast (None: not cast here); a factor used again (a fused qkv's down serves q, k and v) gets
        a copy each further time, so no two layers share a weight."""
        found = self.views.get(id(factor))
        if found is None:
            return None
        if found[1]:
            return self.again(found[0])
        self.views[id(factor)] = (found[0], True)
        return found[0]

    def start(self) -> None:
        if self.copies:
            # inference mode is per thread: ComfyUI runs nodes under it, and the outputs made there are inference
            # tensors, which only code in inference mode may write
            self._running = _CASTER.submit(_copy_all, self.copies, torch.is_inference_mode_enabled())

    def finish(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.result()
        for copy, view in self._later:
            copy.copy_(view)
        self._later.clear()


def _copy_all(pairs, inference: bool) -> None:
    with torch.inference_mode(inference):
        for out, source in pairs:
            out.copy_(source)  # one operation per storage (the same values as through float32)


def _cast_storages(factors: list[tuple[torch.Tensor, torch.device, torch.dtype | None]]) -> _Casts:
    """CPU factors that change dtype, cast a whole storage at a time: a file's factors are views of one tensor per
    run of one dtype (``files.reading``), so the cast of a 92 MB FLUX.2 LoRA is one operation instead of two per
    factor (hundreds of small parallel ones, each of which waits for every torch thread: on a CPU another process
    keeps busy, those waits were most of a load; bench/README.md). Only storages the factors cover at least half
    of are cast whole (``components=`` may take a few of a file's modules). A region two factors share is cast
    once and copied for the second (as separate ``.to`` calls would give). The casts run when ``start`` is called
    (``_Casts``)."""
    groups: dict[tuple, list] = {}
    for factor, device, dtype in factors:
        if (dtype is not None and factor.dtype != dtype and device.type == "cpu" and factor.device.type == "cpu"
                and factor.dtype.is_floating_point):
            groups.setdefault((*_storage_key(factor), dtype), []).append(factor)
    casts = _Casts()
    for (_, source, target), members in groups.items():
        storage = members[0].untyped_storage()
        total = storage.nbytes() // source.itemsize
        regions = {(f.storage_offset(), tuple(f.shape), f.stride()): f.numel() for f in members}
        if len(members) < 2 or 2 * sum(regions.values()) < total:
            continue
        whole = torch.empty(0, dtype=source).set_(storage, 0, (total,), (1,))
        out = torch.empty(total, dtype=target)
        casts.copies.append((out, whole))
        seen = set()
        for f in members:
            region = (f.storage_offset(), tuple(f.shape), f.stride())
            view = out.as_strided(f.shape, f.stride(), f.storage_offset())
            casts.views[id(f)] = (view if region not in seen else casts.again(view), False)
            seen.add(region)
    return casts


def _add_adapter(layer, key: str, patch: ModulePatch, casts: _Casts) -> None:
    """What ``update_layer(key, r, alpha, config)`` does for a plain LoRA with ``init_lora_weights=False``
    and no dropout, then the weights assigned: in the base layer's device and (float) dtype, as peft's
    ``_move_adapter_to_device_of_base_layer`` puts them (``casts``: factors already cast, by id). The adapter
    starts inactive."""
    weight = base_weight(layer)
    dtype = weight.dtype if weight.dtype.is_floating_point else None
    down, up = (_cast(f, weight.device, dtype) if (c := casts.take(f)) is None else c for f in (patch.down, patch.up))
    rank, alpha = patch.rank, _alpha(patch)
    a, b = _lora_modules(layer, down, up)
    layer.r[key] = rank
    layer.lora_alpha[key] = alpha
    layer.lora_dropout[key] = torch.nn.Identity()
    layer.lora_A[key] = a
    layer.lora_B[key] = b
    layer.lora_bias[key] = False
    layer.scaling[key] = alpha / rank
    layer.use_rslora[key] = False
    layer.use_dora[key] = False


def _peft_inject(model: torch.nn.Module, name: str, key: str, patch: ModulePatch) -> BaseTunerLayer:
    """peft's own path for one module of a type the direct path does not build (rare)."""
    from peft import inject_adapter_in_model, set_peft_model_state_dict

    # a string target is matched in full (a list would be matched as name suffixes)
    config = LoraConfig(r=patch.rank, lora_alpha=_alpha(patch), target_modules=re.escape(name),
                        init_lora_weights=False)
    previous = dict(getattr(model, "peft_config", {}) or {})
    if hasattr(model, "peft_config"):
        del model.peft_config
    weight = model.get_submodule(name).weight
    state = {f"{name}.lora_A.weight": patch.down.to(weight.device), f"{name}.lora_B.weight": patch.up.to(weight.device)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inject_adapter_in_model(config, model, adapter_name=key, low_cpu_mem_usage=True)
            set_peft_model_state_dict(model, state, adapter_name=key, low_cpu_mem_usage=True)
    finally:
        model.peft_config = previous
    layer = model.get_submodule(name)
    layer.set_adapter([a for a in layer.active_adapters if a != key], inference_mode=True)
    return layer


def _parent(model: torch.nn.Module, name: str, modules=None) -> tuple[torch.nn.Module, str]:
    """(parent module, child name) of ``name``; ``modules`` (name -> module, e.g. from one walk) saves the
    path walk: parents are containers, never wrapped, so such a map stays right."""
    parent_name, _, child = name.rpartition(".")
    if not parent_name:
        return model, child
    parent = modules.get(parent_name) if modules is not None else None
    return (parent if parent is not None else model.get_submodule(parent_name)), child


def _module(model: torch.nn.Module, name: str, modules=None) -> torch.nn.Module:
    """The module at ``name`` now (a peft wrapper if it is wrapped); raises with the path that is missing."""
    parent, child = _parent(model, name, modules)
    module = parent._modules.get(child)
    return module if module is not None else model.get_submodule(name)


def wrap(model: torch.nn.Module, name: str, modules=None) -> BaseTunerLayer | None:
    """The peft layer at ``name``, wrapping the plain module there first if needed (None: not wrappable)."""
    parent, child = _parent(model, name, modules)
    module = parent._modules.get(child)
    if module is None:
        module = model.get_submodule(name)  # raises with the path that is missing
    if isinstance(module, BaseTunerLayer):
        return module
    layer = _new_wrapper(module)
    if layer is not None:
        setattr(parent, child, layer)
    return layer


def inject(model: torch.nn.Module, key: str, patches: dict[str, ModulePatch],
           modules=None) -> list[tuple[str, BaseTunerLayer]]:
    """Add adapter ``key`` with exactly these patches (real module name -> patch); it starts inactive
    everywhere. Returns the (name, layer) pairs now carrying it. On failure the caller deletes ``key``.
    ``modules``: name -> module of ``model`` (parents are looked up there instead of walking paths)."""
    carriers = []
    factors = []
    for name, patch in patches.items():
        weight = base_weight(_module(model, name, modules))
        dtype = weight.dtype if weight.dtype.is_floating_point else None
        factors += [(patch.down, weight.device, dtype), (patch.up, weight.device, dtype)]
    casts = _cast_storages(factors)
    casts.start()  # the casts run while the layers are built
    try:
        for name, patch in patches.items():
            layer = wrap(model, name, modules)
            if layer is None:
                layer = _peft_inject(model, name, key, patch)
            else:
                _add_adapter(layer, key, patch, casts)
            carriers.append((name, layer))
    finally:
        casts.finish()
    peft_config = dict(getattr(model, "peft_config", {}) or {})
    peft_config[key] = _config(patches)
    model.peft_config = peft_config
    _mark_peft_loaded(model)
    return carriers


def _mark_peft_loaded(model) -> None:
    # diffusers' own adapter methods check this flag; keep the model usable with them.
    model._hf_peft_config_loaded = bool(getattr(model, "peft_config", None))


def delete(model: torch.nn.Module, key: str, layers=None) -> list[str]:
    """Remove adapter ``key`` and unwrap layers left without adapters; returns the unwrapped names.
    ``layers`` (name, layer) limits the search to layers known to carry it."""
    for _, layer in layers if layers is not None else lora_layers(model):
        if key in adapters_of(layer):
            active = [a for a in layer.active_adapters if a != key]
            layer.delete_adapter(key)
            set_active(layer, active)
    if getattr(model, "peft_config", None):
        model.peft_config.pop(key, None)
        if not model.peft_config:
            del model.peft_config
    unwrapped = unwrap_empty(model, layers)
    _mark_peft_loaded(model)
    return unwrapped


def unwrap_empty(model: torch.nn.Module, layers=None) -> list[str]:
    """Put the base module back wherever a peft layer has no adapter left (fused and kept layers stay)."""
    unwrapped = []
    for name, layer in layers if layers is not None else lora_layers(model):
        if not adapters_of(layer) and ORIGINAL not in layer.__dict__ and not layer.__dict__.get(KEEP, False):
            parent, child = _parent(model, name)
            if parent._modules.get(child) is layer:
                setattr(parent, child, layer.get_base_layer())
                unwrapped.append(name)
    return unwrapped


def activate(layers, active: dict[str, WeightFn]) -> None:
    """Make exactly ``active`` adapters active on each layer, each at its strength for that module.

    A scale write per layer: no tensors move, nothing is reloaded.
    """
    for name, layer in layers:
        present = [k for k in active if k in layer.scaling]
        if list(layer.active_adapters) != present:
            set_active(layer, present)
        for k in present:
            layer.set_scale(k, active[k](name))


def set_active(layer, keys: list[str]) -> None:
    """peft's ``set_adapter(keys, inference_mode=True)``: the active list, every adapter frozen. LoRA Deck's
    adapter tensors are made frozen, so the list is all that changes unless something unfroze them
    (peft's own loop over every adapter's parameters is most of a switch's cost on a big model)."""
    if _frozen(layer):
        layer.__dict__["_active_adapter"] = list(keys)
    else:
        layer.set_adapter(list(keys), inference_mode=True)


def _frozen(layer) -> bool:
    """No lora_A / lora_B parameter of any adapter on ``layer`` requires a gradient."""
    modules = layer._modules
    return not any(p is not None and p.requires_grad for side in ("lora_A", "lora_B")
                   for module in modules[side]._modules.values() for p in module._parameters.values())


def write_scales(slots, key: str, weight: float | WeightFn) -> None:
    """Strength ``weight`` (a number, or ``weight(name)`` per module) for adapter ``key`` on each of its scale
    slots (``LayerIndex.slots``): one dict write per layer, with peft's ``set_scale`` arithmetic to the bit.
    This is the whole cost of a strength change."""
    if callable(weight):
        for name, scaling, alpha, divisor in slots:
            scaling[key] = weight(name) * alpha / divisor
    else:
        for _, scaling, alpha, divisor in slots:
            scaling[key] = weight * alpha / divisor
