"""The one owner of a live pipeline: reconciles it to a StackSpec right before use.

All mutation of the pipeline happens here, under ``self.lock``. Reconcile is idempotent and
transactional: if anything fails, the pipeline is reconciled back to the last stack that
applied, and loading never changes outputs until activation.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from . import block_weights, events, fusion, peft_ops
from .errors import LoraDeckError
from .families import Family
from .files import FILE_CACHE, FileCache
from .formats import convert
from .resolve import PreparedAdapter, module_index, prepare
from .snapshot import PipelineSnapshot, read_snapshot
from .specs import AdapterSpec, StackSpec

log = logging.getLogger(__name__)

MAX_LOADED = int(os.environ.get("LORADECK_MAX_ADAPTERS", "8"))


@dataclass(frozen=True)
class ReconcileStats:
    loaded: int = 0
    evicted: int = 0
    restored_layers: int = 0
    fused_layers: int = 0


class PipelineOwner:
    """Wraps one diffusers pipeline object. Create it once per pipeline; share it freely."""

    def __init__(self, pipe, family: Family, label: str, files: FileCache = FILE_CACHE):
        self.pipe = pipe
        self.family = family
        self.label = label
        self.files = files
        self.lock = threading.RLock()
        self.loads = 0  # adapters injected over the owner's life (tests count reloads)
        self._indexes = {c: module_index(m, family.aliases_for(c, m)) for c, m in self._models().items()}
        self._prepared: dict[str, PreparedAdapter] = {}
        self._block_rules: dict[tuple, object] = {}
        self._layer_cache: dict[str, list] = {}  # component -> peft layers; dropped when adapters come or go
        self._loaded: OrderedDict[str, str] = OrderedDict()  # key -> sha256, LRU order
        self._applied = StackSpec()
        self._snapshot = read_snapshot(self, self._applied, {})

    # -- reading -------------------------------------------------------------------------
    def _models(self) -> dict[str, torch.nn.Module]:
        return {c: getattr(self.pipe, c) for c in self.family.components if getattr(self.pipe, c, None) is not None}

    def layers(self, component: str) -> list:
        """(name, peft layer) pairs of one component. Walking a big UNet's modules costs milliseconds,
        and a strength change must cost a scale write, so the list is kept until adapters are added
        or removed (only this owner does either)."""
        layers = self._layer_cache.get(component)
        if layers is None:
            layers = self._layer_cache[component] = peft_ops.lora_layers(self._models()[component])
        return layers

    @property
    def snapshot(self) -> PipelineSnapshot:
        """An immutable view of the last applied state (safe to read from any thread)."""
        return self._snapshot

    def prepare(self, path: str, sha256: str | None = None) -> PreparedAdapter:
        """Read, convert and validate a file against this pipeline without changing it."""
        lora = self.files.get(path)
        if sha256 is not None and lora.sha256 != sha256:
            log.warning("%s changed on disk since it was chosen; using its current content", path)
        cached = self._prepared.get(lora.sha256)
        if cached is not None:
            return cached
        converted = convert(path, lora.tensors, lora.metadata, self.family)
        prepared = prepare(path, lora.sha256, converted, lora.metadata, self.family, self._indexes, self._models())
        self._prepared[lora.sha256] = prepared
        return prepared

    # -- reconciling ---------------------------------------------------------------------
    def apply(self, stack: StackSpec) -> ReconcileStats:
        """Make the pipeline compute exactly what ``stack`` describes."""
        with self.lock:
            previous = self._applied
            try:
                stats = self._reconcile(stack)
            except BaseException:
                if stack != previous:
                    log.info("reconcile failed; returning %s to its previous stack", self.label)
                    self._reconcile(previous)
                raise
            self._applied = stack
            self._snapshot = read_snapshot(self, stack, {k: p.report for k, p in self._reports(stack)})
            events.publish(self._snapshot)
            return stats

    def _reports(self, stack: StackSpec):
        for key, spec in stack.keyed():
            prepared = self._prepared.get(spec.sha256)
            if prepared is not None:
                yield key, prepared

    def _reconcile(self, stack: StackSpec) -> ReconcileStats:
        keyed = stack.keyed()
        loaded = sum(self._ensure_loaded(key, spec) for key, spec in keyed)
        restored = fused = 0
        for component in self._models():
            layers = self.layers(component)
            active, to_fuse = self._plan(keyed, component)
            if fusion.needs_refuse(layers, to_fuse):
                restored += fusion.restore(layers)
            peft_ops.activate(layers, active)
            if to_fuse and fusion.needs_refuse(layers, to_fuse):
                names = {k: s.name for k, s in keyed}
                fused += fusion.fuse(layers, to_fuse, stack.safe_fusing, names)
        evicted = self._evict({k for k, _ in keyed})
        return ReconcileStats(loaded, evicted, restored, fused)

    def _plan(self, keyed, component: str):
        active, to_fuse = {}, {}
        for key, spec in keyed:
            if not spec.enabled:
                continue
            weight = spec.effective_weight(component, self.family)
            (to_fuse if spec.fused else active)[key] = self._weight_fn(spec.blocks, component, weight)
        return active, to_fuse

    def block_rule(self, blocks: tuple):
        """module name -> multiplier for the denoiser; validates ``blocks`` (SpecError) and caches."""
        rule = self._block_rules.get(blocks)
        if rule is None:
            denoiser = self._models()[self.family.denoiser]
            rule = self._block_rules[blocks] = block_weights.denoiser_rule(blocks, self.family, denoiser)
        return rule

    def _weight_fn(self, blocks: tuple, component: str, weight: float):
        if not blocks:
            return _constant(weight)
        if component != self.family.denoiser:
            return _constant(weight * block_weights.text_multiplier(blocks, self.family))
        rule = self.block_rule(blocks)
        return lambda name: weight * rule(name)

    def _ensure_loaded(self, key: str, spec: AdapterSpec) -> int:
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return 0
        prepared = self.prepare(spec.path, spec.sha256)
        models = self._models()
        self._layer_cache.clear()
        try:
            for component, patches in prepared.patches.items():
                peft_ops.inject(models[component], key, patches)
        except Exception as exc:
            for model in models.values():
                peft_ops.delete(model, key)
            raise LoraDeckError(f"LoRA file {spec.path!r}: could not be applied ({exc}); the pipeline is unchanged. "
                                "Please report this with the file's key names.") from exc
        self._loaded[key] = spec.sha256
        self.loads += 1
        return 1

    def _evict(self, wanted: set[str]) -> int:
        count = 0
        for key in list(self._loaded):
            if len(self._loaded) <= MAX_LOADED:
                break
            if key in wanted:
                continue
            self._layer_cache.clear()
            for model in self._models().values():
                peft_ops.delete(model, key)
            sha = self._loaded.pop(key)
            if sha not in self._loaded.values():  # converted tensors (DoRA deltas are layer-sized) go too
                self._prepared.pop(sha, None)
            count += 1
        return count

    def unload_all(self) -> None:
        """Remove every adapter and restore every fused layer: the pipeline as it was loaded."""
        self.apply(StackSpec())
        with self.lock:
            self._layer_cache.clear()
            for key in list(self._loaded):
                for model in self._models().values():
                    peft_ops.delete(model, key)
                del self._loaded[key]
            self._snapshot = read_snapshot(self, self._applied, {})

    @property
    def loaded_keys(self) -> tuple[str, ...]:
        return tuple(self._loaded)

    def last_applied(self) -> StackSpec:
        return self._applied


def _constant(weight: float):
    return lambda _name: weight

