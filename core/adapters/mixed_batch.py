"""Several adapter configurations in one batch: each batch row runs its own (peft's mixed-batch inference).

peft's LoRA layers take ``adapter_names``, one name per batch row, and run each row with that adapter
(``LoraLayer._mixed_batch_forward``). diffusers' pipelines do not pass it on, so a forward pre-hook on each
LoRA layer adds it, as peft's own ``_enable_peft_forward_hooks`` does for its models.

A grid cell usually needs several adapters at once, each at a strength (and block weights) of its own, while
peft gives a row one adapter. So each layer gets one temporary adapter per distinct configuration the cells
have there: its down side runs the loaded adapters' own down projections (the same modules: nothing is
copied) and its up side sums their up projections at that configuration's scales, which are exactly what
``set_scale`` would give. A layer where every cell has the same configuration needs no routing at all: it
is simply activated at that configuration, as a normal run would.

Rows are the cells in order; a batch of k x cells rows repeats them, which keeps classifier-free guidance
aligned (diffusers stacks the unconditional rows, then the conditional ones, each in prompt order). Inside a
module that folds each row's tokens into the batch (``Family.folded_batches``: Krea 2's text fusion runs its
layerwise blocks on batch x tokens rows), each of the module's own rows spans that many rows, one after another.
Only the PipelineOwner installs and removes this (``PipelineOwner.rows``), under its lock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from peft.tuners.lora.layer import Linear, _ConvNd

from ..errors import LoraDeckError
from ..stacks.specs import StackSpec

BASE = "__base__"  # peft's name for "no adapter on this row"
ROW_PREFIX = "loradeck_row"
ROUTABLE = (Linear, _ConvNd)  # peft layers whose mixed-batch forward runs lora_A / lora_B modules


class MixedBatchError(LoraDeckError):
    """This batch cannot run as one (a layer peft cannot route, or a batch that is not whole cells)."""


class _Downs(torch.nn.Module):
    """The down side of a row adapter: each loaded adapter's own down projection, outputs kept apart."""

    def __init__(self, parts):
        super().__init__()
        self.parts = tuple(parts)  # a plain tuple: shared modules, not registered twice

    @property
    def weight(self):  # peft casts the rows to ``lora_A.weight.dtype``
        return self.parts[0].weight

    def forward(self, x):
        return tuple(part(x) for part in self.parts)


class _Ups(torch.nn.Module):
    """The up side: each adapter's up projection times its scale, summed (peft then multiplies by 1.0)."""

    def __init__(self, parts, scales):
        super().__init__()
        self.parts, self.scales = tuple(parts), tuple(scales)

    def forward(self, hidden):
        out = None
        for part, h, scale in zip(self.parts, hidden, self.scales, strict=True):
            y = part(h) * scale
            out = y if out is None else out + y
        return out


def peft_scale(layer, key: str, strength: float) -> float:
    """What ``layer.set_scale(key, strength)`` would store, computed the same way."""
    if layer.use_rslora.get(key, False):
        return strength * layer.lora_alpha[key] / math.sqrt(layer.r[key])
    return strength * layer.lora_alpha[key] / layer.r[key]


class _Outer:
    """A forward pre-hook keeping the batch a module was last called with (its first tensor's first dimension),
    for the layers inside it that fold each row's tokens into their batch (``Family.folded_batches``)."""

    def __init__(self):
        self.batch = 0

    def __call__(self, module, args, kwargs):
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        self.batch = 0 if first is None else len(first)


def _row_names(rows: tuple, size: int, outer: _Outer | None) -> list:
    """The adapter of each of ``size`` batch rows: the cells repeat (classifier-free guidance stacks whole
    batches); inside a folding module each of its ``outer.batch`` rows is ``size // outer.batch`` rows here."""
    if outer is not None and outer.batch and size != outer.batch:
        if size % outer.batch or outer.batch % len(rows):
            raise MixedBatchError(f"a LoRA layer got a batch of {size} inside a module run on a batch of "
                                  f"{outer.batch}, which does not split into the {len(rows)} cells")
        per = size // outer.batch
        return [rows[b % len(rows)] for b in range(outer.batch) for _ in range(per)]
    if size % len(rows):
        raise MixedBatchError(f"a LoRA layer got a batch of {size}, not a whole number of the {len(rows)} cells")
    return list(rows) * (size // len(rows))


def _hook(module, args, kwargs):
    x = args[0] if args else kwargs.get("x")
    if x is None:
        raise MixedBatchError(f"a LoRA layer got no input to split into the {len(module._loradeck_rows)} cells")
    names = _row_names(module._loradeck_rows, len(x), getattr(module, "_loradeck_outer", None))
    return args, {**kwargs, "adapter_names": names}


class Router:
    """Routes each batch row of ``stacks`` (one per cell) through its own adapters on every LoRA layer of
    ``owner``'s components. ``update(t)`` re-plans for position t of the steps (strength schedules)."""

    def __init__(self, owner, stacks: Sequence[StackSpec]):
        self.owner, self.stacks = owner, tuple(stacks)
        self._routed: dict[int, tuple] = {}  # id(layer) -> (layer, hook handle, row adapter names)
        self._outer: dict[str, tuple] = {}  # folding module name -> (_Outer, its hook handle)

    def update(self, t: float = 0.0) -> None:
        for component in self.owner.models():
            plans = [self.owner.plan(stack, component, t)[0] for stack in self.stacks]
            for name, layer in self.owner.layers(component):
                configs = [tuple((k, peft_scale(layer, k, fn(name))) for k, fn in active.items() if k in layer.scaling)
                           for active in plans]
                self._unroute(layer)
                if len(set(configs)) == 1:
                    _activate(layer, configs[0])
                else:
                    self._route(component, name, layer, configs)
                    layer._loradeck_outer = self._folding(component, name)

    def _folding(self, component: str, name: str) -> _Outer | None:
        """The batch keeper of the folding module (``Family.folded_batches``) that holds layer ``name``, if any."""
        family = self.owner.family
        if component != family.denoiser:
            return None
        for module in family.folded_batches:
            if name.startswith(module + "."):
                if module not in self._outer:
                    outer = _Outer()
                    handle = self.owner.models()[component].get_submodule(module).register_forward_pre_hook(
                        outer, with_kwargs=True)
                    self._outer[module] = (outer, handle)
                return self._outer[module][0]
        return None

    def _route(self, component: str, name: str, layer, configs: list[tuple]) -> None:
        family = self.owner.family
        if component == family.denoiser and family.packed_inputs and name.startswith(family.packed_inputs):
            raise MixedBatchError(f"layer {name} takes every row's tokens as one sequence ({family.title}), so a "
                                  "batch cannot give each cell its own adapters there")
        if not isinstance(layer, ROUTABLE):
            raise MixedBatchError(f"layer {name} is a {type(layer).__name__}, which peft's mixed batches do not "
                                  "route here")
        dora = sorted({k for config in configs for k, _ in config if getattr(layer, "use_dora", {}).get(k, False)})
        if dora:
            raise MixedBatchError(f"{', '.join(dora)} is DoRA (layer {name}), and peft's mixed batches cannot apply "
                                  "DoRA's magnitude per row")
        names: dict[tuple, str] = {(): BASE}
        for config in configs:
            if config not in names:
                key = names[config] = f"{ROW_PREFIX}{len(names)}"
                keys = [k for k, _ in config]
                layer.lora_A[key] = _Downs(layer.lora_A[k] for k in keys)
                layer.lora_B[key] = _Ups((layer.lora_B[k] for k in keys), (s for _, s in config))
                layer.lora_dropout[key] = torch.nn.Identity()
                layer.scaling[key] = 1.0
        layer._loradeck_rows = tuple(names[c] for c in configs)
        handle = layer.register_forward_pre_hook(_hook, with_kwargs=True)
        self._routed[id(layer)] = (layer, handle, tuple(n for n in names.values() if n != BASE))

    def _unroute(self, layer) -> None:
        entry = self._routed.pop(id(layer), None)
        if entry is None:
            return
        _, handle, keys = entry
        handle.remove()
        for key in keys:
            for table in (layer.lora_A, layer.lora_B, layer.lora_dropout):
                del table[key]
            layer.scaling.pop(key, None)
        del layer._loradeck_rows
        if hasattr(layer, "_loradeck_outer"):
            del layer._loradeck_outer

    def remove(self) -> None:
        """Take every row adapter and hook out again (the owner then re-activates its applied stack)."""
        for layer, _, _ in list(self._routed.values()):
            self._unroute(layer)
        for _, handle in self._outer.values():
            handle.remove()
        self._outer.clear()

    @property
    def routed_layers(self) -> int:
        return len(self._routed)


def _activate(layer, config: tuple) -> None:
    keys = [k for k, _ in config]
    if list(layer.active_adapters) != keys:
        layer.set_adapter(keys, inference_mode=True)
    for key, scale in config:
        layer.scaling[key] = scale


def union(stacks: Sequence[StackSpec]) -> StackSpec:
    """One stack holding every adapter any of ``stacks`` uses, under the same internal keys (so applying it
    loads them all). Fused adapters must be the same in every stack (``fused_differs`` tells)."""
    chosen: dict[str, object] = {}
    for stack in stacks:
        for key, spec in stack.keyed():
            chosen.setdefault(key, spec)
    ordered = sorted(chosen.items(), key=lambda kv: (kv[0].split("_")[1], _copy_number(kv[0])))
    out = StackSpec(safe_fusing=stacks[0].safe_fusing if stacks else True)
    for _, spec in ordered:
        out = out.add(spec)
    if {k for k, _ in out.keyed()} != set(chosen):  # a second copy of a file without its first: keep apart
        raise MixedBatchError("the cells hold copies of one file that cannot share one stack")
    return out


def _copy_number(key: str) -> int:
    parts = key.split("_")
    return int(parts[2]) if len(parts) > 2 else 1


def fused_differs(stacks: Sequence[StackSpec]) -> str | None:
    """Why the fused adapters of ``stacks`` are not all the same (they live in the shared weights), or None."""
    fused = [tuple((k, s) for k, s in stack.keyed() if s.enabled and s.fused) for stack in stacks]
    for entries in fused:
        if entries != fused[0]:
            names = sorted({s.name for _, s in entries} ^ {s.name for _, s in fused[0]}) or \
                sorted({s.name for _, s in entries})
            return (f"fused adapters ({', '.join(names)}) differ between cells, and fused weights are shared by "
                    "every row of a batch")
    return None
