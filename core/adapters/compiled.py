"""torch.compile of the denoiser, prepared for hotswap: changing adapters never recompiles.

diffusers' way (``enable_lora_hotswap(target_rank)`` before the first load, then ``load_lora_weights(...,
hotswap=True)``) pads one adapter's ranks and makes its scales tensors, so a compiled graph sees the same
shapes whichever adapter is swapped in. LoRA Deck does this for a whole stack:

- Every module of the envelope (``CompileSpec.targets``) is a peft LoRA layer that stays wrapped and carries
  three non-persistent buffers: ``loradeck_down`` [C, in(, kh, kw)], ``loradeck_up`` [out, C(, 1, 1)] and
  ``loradeck_scale`` [C], i.e. C rows of low-rank capacity shared by the adapters active there.
- Its forward (an instance attribute; peft's class is untouched) computes ``base(x) + up(scale * down(x))``
  from those buffers only. The compiled graph reads no adapter dict, no active-adapter list and no Python
  float, so loading, switching, enabling, disabling and reweighting only change buffer contents in place
  (``copy_`` / ``fill_``), never anything dynamo guards on.
- The truth stays in peft's structures: the owner activates, scales, fuses and reads back as in eager mode,
  then the buffers are synced from them, each layer's active adapters packed one after another (rows
  [0, r1) for the first, [r1, r1 + r2) for the second, ...), unused rows zero.

Beyond the envelope the denoiser recompiles once, with a log line saying why: an adapter on a module the
envelope lacks (the module joins it), or needing more rows at a module than it has (that module's buffers
grow). Fused adapters are in the base weights, changed in place: no recompile. DoRA, LoHa, LoKr and
full-diff patches arrive as exact dense pairs whose rank is the layer's smaller side, so they need that many
rows where they apply. Text encoders are not compiled: their adapters use peft's eager layers (diffusers'
hotswap refuses them). A family with experts (Wan 2.2's ``transformer_2``) compiles each denoiser the same way, one
envelope over all of them.
"""

from __future__ import annotations

import logging
import types

import torch
import torch.nn.functional as F
from peft.tuners.lora import layer as lora_layer
from peft.tuners.tuners_utils import BaseTunerLayer

from ..stacks.specs import CompileSpec
from . import peft_ops

log = logging.getLogger(__name__)

DOWN, UP, SCALE = "loradeck_down", "loradeck_up", "loradeck_scale"
SLOTS = "_loradeck_slots"  # ((adapter key, first row, end row), ...) packed in the buffers now


def _linear_forward(self, x, *args, **kwargs):
    result = self.base_layer(x, *args, **kwargs)
    if self._disable_adapters or self.merged_adapters:  # diffusers' disable_lora / peft merge: base only
        return result
    down = self.loradeck_down
    low = F.linear(x.to(down.dtype), down) * self.loradeck_scale
    return result + F.linear(low, self.loradeck_up).to(result.dtype)


def _conv_forward(self, x, *args, **kwargs):
    base = self.base_layer
    result = base(x, *args, **kwargs)
    if self._disable_adapters or self.merged_adapters:
        return result
    down = self.loradeck_down
    # as peft's lora_A: the base layer's kernel, stride and padding
    low = F.conv2d(x.to(down.dtype), down, None, base.stride, base.padding) * self.loradeck_scale.view(1, -1, 1, 1)
    return result + F.conv2d(low, self.loradeck_up).to(result.dtype)


def _quantized(module) -> bool:
    """A Linear whose weight stays as the file stored it (``models.quantized.QuantizedLinear``): its forward is its
    own, the slot forward only adds to it."""
    return isinstance(module, torch.nn.Linear) and bool(getattr(module, "quantized", None))


def _slot_forward(layer):
    base = layer.get_base_layer()
    if type(layer) is lora_layer.Linear and (type(base) is torch.nn.Linear or _quantized(base)) \
            and not layer.fan_in_fan_out:
        return _linear_forward
    if type(layer) is lora_layer.Conv2d and type(base) is torch.nn.Conv2d and base.groups == 1 \
            and isinstance(base.padding, tuple):
        return _conv_forward
    return None


def _modules(model: torch.nn.Module):
    """(name, plain module) of every module, a peft layer counting as its base layer (its insides skipped)."""
    inside = None
    for name, module in model.named_modules():
        if inside is not None and name.startswith(inside):
            continue
        inside = None
        if isinstance(module, BaseTunerLayer):
            inside = name + "."
            module = module.get_base_layer()
        yield name, module


def target_names(model: torch.nn.Module, spec: CompileSpec) -> set[str]:
    """The modules ``spec.targets`` names in the denoiser (the ones carrying adapters are added by the caller)."""
    if spec.targets == "loaded":
        return set()
    names = set()
    for name, module in _modules(model):
        conv = type(module) is torch.nn.Conv2d
        if type(module) is torch.nn.Linear or _quantized(module) \
                or (conv and (spec.targets == "all" or module.kernel_size == (1, 1))):
            names.add(name)
    return names


def _rows(layer) -> int:
    return layer.loradeck_scale.numel()


def _install(layer, rows: int) -> None:
    """Zeroed buffers of ``rows`` capacity (replacing smaller ones) and the slot forward."""
    weight = peft_ops.base_weight(layer)  # a quantized layer's stand-in: its dtype and device, never dequantized
    dtype = weight.dtype if weight.dtype.is_floating_point else torch.float32
    kernel = tuple(weight.shape[2:])
    make = lambda *shape: torch.zeros(*shape, dtype=dtype, device=weight.device)  # noqa: E731
    layer.register_buffer(DOWN, make(rows, layer.in_features, *kernel), persistent=False)
    layer.register_buffer(UP, make(layer.out_features, rows, *(1,) * len(kernel)), persistent=False)
    layer.register_buffer(SCALE, make(rows), persistent=False)
    layer.forward = types.MethodType(_slot_forward(layer), layer)
    setattr(layer, SLOTS, ())
    setattr(layer, peft_ops.KEEP, True)


def _pack(layer, keys: list[str]) -> None:
    """Copy the adapters ``keys`` into the buffers one after another; every other row zero."""
    down, up, scale = layer.loradeck_down, layer.loradeck_up, layer.loradeck_scale
    with torch.no_grad():
        down.zero_()
        up.zero_()
        scale.zero_()
        start, slots = 0, []
        for key in keys:
            a, b = layer.lora_A[key].weight, layer.lora_B[key].weight
            end = start + a.shape[0]
            down[start:end].copy_(a)
            up[:, start:end].copy_(b)
            scale[start:end].fill_(float(layer.scaling[key]))
            slots.append((key, start, end))
            start = end
    setattr(layer, SLOTS, tuple(slots))


def _unpack(layer) -> None:
    for attribute in (DOWN, UP, SCALE, SLOTS, peft_ops.KEEP, "forward"):
        if attribute in layer._buffers:
            del layer._buffers[attribute]
        elif attribute in layer.__dict__:
            delattr(layer, attribute)


def denoisers(owner) -> list[str]:
    """The denoiser components the pipeline has (the denoiser, and experts such as Wan 2.2's transformer_2)."""
    models = owner.models()
    return [c for c in owner.family.denoisers if c in models]


class Envelope:
    """The compiled denoisers' hotswap envelope: their layers (keyed (component, module name)), and the compiled
    calls kept while a stack without ``compile`` runs the same layers eagerly."""

    def __init__(self, spec: CompileSpec):
        self.spec = spec
        self.layers: dict[tuple[str, str], BaseTunerLayer] = {}
        self.growths = 0  # times the envelope had to change shape (each recompiles once)
        self._calls: dict[str, object] = {}  # component -> its compiled ``_call_impl``
        self._call_options = None

    # -- shape ---------------------------------------------------------------------------------------------
    def extend(self, owner, names, why: str = "") -> None:
        """Bring modules ``names`` ((component, module name) pairs of the denoisers) into the envelope (wrapping
        plain modules)."""
        added = []
        for component, name in sorted(set(names) - set(self.layers)):
            model, index = owner.models()[component], owner.index(component)
            if not _can_slot(model.get_submodule(name)):
                continue
            layer = peft_ops.wrap(model, name, index.modules)
            _install(layer, self.spec.capacity)
            index.wrapped(name, layer)
            self.layers[(component, name)] = layer
            added.append(name)
        if added and why:
            self.growths += 1
            log.warning("LoRA Deck: %s touches %d module(s) outside the compile envelope (e.g. %s); they join it and "
                        "the denoiser recompiles once. Compile with targets='linear' or 'all' to include them "
                        "from the start.", why, len(added), added[0])

    def sync(self, owner, names: dict[str, str]) -> None:
        """Pack each envelope layer's active adapters into its buffers; grow a layer that needs more rows."""
        grown = []
        for (_, name), layer in self.layers.items():
            want = [k for k in layer.active_adapters if k in layer.lora_A]
            have = getattr(layer, SLOTS)
            if tuple(k for k, _, _ in have) == tuple(want):
                with torch.no_grad():
                    for key, start, end in have:
                        layer.loradeck_scale[start:end].fill_(float(layer.scaling[key]))
                continue
            need = sum(layer.lora_A[k].weight.shape[0] for k in want)
            if need > _rows(layer):
                _install(layer, need)
                grown.append((name, need, want))
            _pack(layer, want)
        if grown:
            self.growths += 1
            name, need, keys = grown[0]
            who = ", ".join(names.get(k, k) for k in keys)
            log.warning("LoRA Deck: the adapters active at %s (%s) need %d low-rank rows, more than the compile "
                        "envelope's %d (max_rank x max_adapters); %d module(s) grow and the denoiser recompiles "
                        "once. Compile with a larger max_rank to avoid it.", name, who, need, self.spec.capacity,
                        len(grown))

    def write_scales(self, carriers, key: str) -> None:
        """A strength change of ``key``: the scale rows it occupies, on the layers carrying it."""
        with torch.no_grad():
            for _, layer in carriers:
                for slot_key, start, end in layer.__dict__.get(SLOTS, ()):
                    if slot_key == key:
                        layer.loradeck_scale[start:end].fill_(float(layer.scaling[key]))

    def forget(self, key: str) -> None:
        """Adapter ``key`` is being deleted: no buffer keeps a copy of it."""
        for layer in self.layers.values():
            slots = layer.__dict__.get(SLOTS, ())
            if any(k == key for k, _, _ in slots):
                _pack(layer, [k for k, _, _ in slots if k != key and k in layer.lora_A])

    # -- running -------------------------------------------------------------------------------------------
    def run_compiled(self, owner) -> None:
        options = {"backend": self.spec.backend}
        if self.spec.backend == "inductor" and self.spec.mode != "default":
            options["mode"] = self.spec.mode
        if self._call_options != options:
            self._calls.clear()
        for component in denoisers(owner):
            model = owner.models()[component]
            if component not in self._calls:
                log.info("LoRA Deck: compiling %s's %s (%s); the first run after this compiles it",
                         owner.label, component, ", ".join(f"{k}={v}" for k, v in options.items()))
                model.compile(**options)
                self._calls[component] = model._compiled_call_impl
            else:
                model._compiled_call_impl = self._calls[component]
        self._call_options = options

    def run_eager(self, owner) -> None:
        for component in denoisers(owner):
            owner.models()[component]._compiled_call_impl = None

    def release(self, owner) -> None:
        """Eager again, buffers and slot forwards gone, wrappers without adapters unwrapped."""
        self.run_eager(owner)
        for layer in self.layers.values():
            _unpack(layer)
        for component in denoisers(owner):
            mine = [(name, layer) for (c, name), layer in self.layers.items() if c == component]
            peft_ops.unwrap_empty(owner.models()[component], mine)
        self.layers.clear()


def _can_slot(module: torch.nn.Module) -> bool:
    """Whether a slot forward exists for this module (a peft layer, or the plain module it would wrap)."""
    if isinstance(module, BaseTunerLayer):
        return _slot_forward(module) is not None
    return type(module) is torch.nn.Linear or _quantized(module) or (
        type(module) is torch.nn.Conv2d and module.groups == 1 and isinstance(module.padding, tuple))


def reconcile(owner, spec: CompileSpec | None, names: dict[str, str]) -> Envelope | None:
    """Make the denoiser run as ``spec`` asks, with its envelope synced to the layers' active adapters.

    None: run eagerly (an existing envelope stays, so compiling again costs no recompile)."""
    envelope = owner.envelope
    if envelope is None and spec is None:
        return None
    components = denoisers(owner)
    layers = {(c, n): layer for c in components for n, layer in owner.layers(c)}
    carrying = {where for where, layer in layers.items() if peft_ops.adapters_of(layer)}

    def targets(spec: CompileSpec) -> set[tuple[str, str]]:
        return {(c, n) for c in components for n in target_names(owner.models()[c], spec)}

    if envelope is None:
        envelope = Envelope(spec)
        envelope.extend(owner, targets(spec) | carrying)
    elif spec is not None and spec != envelope.spec:
        wider = spec.capacity > envelope.spec.capacity
        envelope.spec = spec
        if wider:
            for layer in envelope.layers.values():
                if _rows(layer) < spec.capacity:
                    _install(layer, spec.capacity)
        envelope.extend(owner, targets(spec))
    new = carrying - set(envelope.layers)
    if new:
        keys = {k for where in new for k in peft_ops.adapters_of(layers[where])}
        envelope.extend(owner, new, why="adapter " + ", ".join(sorted(names.get(k, k) for k in keys)))
    envelope.sync(owner, names)
    if spec is None:
        envelope.run_eager(owner)
    else:
        envelope.run_compiled(owner)
    return envelope
