"""The one owner of a live pipeline: reconciles it to a StackSpec right before use.

All mutation of the pipeline happens here, under ``self.lock``. Applying a stack is idempotent and
transactional: if anything fails — loading, fusing, or reading the result back — the pipeline is
reconciled to the last stack that applied, and loading never changes outputs until activation.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

import torch

from ..errors import LoraDeckError, LoraFileError, SpecError
from ..files.reading import LoraFile
from ..files.sources import adapter_spec, pair_spec
from ..files.store import tensors_nbytes
from ..formats import ParamDelta, convert
from ..frozen import evolve
from ..models.family import Family
from ..stacks import block_weights
from ..stacks.specs import AdapterSpec, StackSpec
from . import compiled, devices, fusion, mixed_batch, peft_ops
from .layer_index import LayerIndex
from .load_report import LoadReport
from .magnitude import WeightStats
from .matching import PreparedAdapter, check_complete, original_weight, prepare
from .module_index import module_index
from .param_deltas import ParamDeltas, parameter
from .snapshot import PipelineSnapshot, read_snapshot, reread_strengths

log = logging.getLogger(__name__)

MAX_BRANCHES = 16  # snapshots kept per pipeline, one per source (graph node) that applied a stack


class PipelineOwner:
    """Wraps one diffusers pipeline object. Create it through a Runtime (``runtime.pipelines`` or ``Deck``)."""

    def __init__(self, pipe, family: Family, label: str, runtime, pipeline_id: str):
        if family.fix is not None:  # before anything reads the pipeline: the repairs its family needs
            family.fix(pipe)
        self.pipe = pipe
        self.family = family
        self.label = label
        self.id = pipeline_id
        self.runtime = runtime
        self.lock = threading.RLock()
        self._probe: tuple | None = None  # (denoiser, one of its weights, the module holding it): probe_parameter
        self.loads = 0  # adapters injected over the owner's life (tests count reloads)
        self._indexes = {c: module_index(m, family, c) for c, m in self.models().items()}
        self._block_rules: dict[tuple, object] = {}
        self._layer_index: dict[str, LayerIndex] = {}  # component -> its peft layers, per adapter; kept up to date
        self._loaded: OrderedDict[str, LoadReport] = OrderedDict()  # injected adapter key -> report, LRU order
        self._sha256: dict[str, str] = {}  # injected adapter key -> its content hash (to free its store entries)
        self._weights = WeightStats(self.models(), original_weight)  # weight norms for the magnitude bound
        self._live: dict[int, weakref.ref] = {}  # stacks applied and still referenced somewhere (ids -> weakrefs)
        self.envelope: compiled.Envelope | None = None  # the compiled denoiser's hotswap envelope, once asked for
        self._params = ParamDeltas()  # whole-parameter differences (biases, norms, ...) of the loaded adapters
        self._applied = StackSpec()
        self._snapshot = read_snapshot(self, self._applied, {})
        self._branches: OrderedDict[str, PipelineSnapshot] = OrderedDict()  # source -> its last snapshot
        self._branch_lock = threading.Lock()  # routes read branches while the executor applies

    # -- reading -------------------------------------------------------------------------
    def probe_parameter(self) -> torch.nn.Parameter | None:
        """A parameter of the denoiser, whose ``dtype`` and ``device`` the snapshot reads (the Parameter object
        is kept: ``Module.to`` changes its data in place, so reading it stays a read of the model); found again
        when the denoiser module is replaced or the parameter left it."""
        denoiser = self.models().get(self.family.denoiser)
        if denoiser is None:
            return None
        kept = self._probe
        if kept is not None and kept[0] is denoiser and kept[1] is getattr(kept[2], "weight", None):
            return kept[1]
        for module in denoiser.modules():
            weight = module._parameters.get("weight")
            if weight is not None:
                self._probe = (denoiser, weight, module)
                return weight
        return next(denoiser.parameters(), None)

    def models(self) -> dict[str, torch.nn.Module]:
        """The LoRA-able components this pipeline has (a family component set to None is absent)."""
        return {c: getattr(self.pipe, c) for c in self.family.components if getattr(self.pipe, c, None) is not None}

    def names(self, component: str) -> dict:
        """Every name a file may use for a module (or parameter) of ``component`` -> its real name (module_index)."""
        return self._indexes[component]

    def index(self, component: str) -> LayerIndex:
        """One component's peft layers and which carry each adapter. Walking a big UNet's modules costs
        milliseconds, and a strength change must cost a scale write, so the walk happens once and
        injecting or deleting an adapter updates the index (only this owner does either)."""
        index = self._layer_index.get(component)
        if index is None:
            index = self._layer_index[component] = LayerIndex(self.models()[component])
        return index

    def layers(self, component: str) -> list:
        """(name, peft layer) pairs of one component, in module order."""
        return self.index(component).pairs()

    def carriers(self, component: str, key: str) -> list:
        """(name, peft layer) pairs of one component that carry adapter ``key``."""
        return self.index(component).carriers(key)

    @property
    def snapshot(self) -> PipelineSnapshot:
        """An immutable view of the last applied state (safe to read from any thread)."""
        return self._snapshot

    def read_back(self) -> PipelineSnapshot:
        """The applied stack read from every layer again (what ``snapshot`` must equal, but for its time)."""
        with self.lock:
            return read_snapshot(self, self._applied, self._loaded, self._snapshot.source,
                                 self._snapshot.source_title)

    @property
    def branches(self) -> tuple[PipelineSnapshot, ...]:
        """The last snapshot each source (a Generate or Save node, or the Python API) applied, newest first.
        Graph branches share one pipeline; this is what each of them ran with."""
        with self._branch_lock:
            return tuple(reversed(self._branches.values()))

    @property
    def applied(self) -> StackSpec:
        return self._applied

    @property
    def loaded_keys(self) -> tuple[str, ...]:
        return tuple(self._loaded)

    def prepare(self, path: str, sha256: str | None = None, memory: LoraFile | None = None) -> PreparedAdapter:
        """Read, convert and validate a file (or the in-memory ``memory``) against this pipeline without
        changing it. Conversions are kept in the runtime's store, keyed by content and pipeline. Every failure
        is a LoraDeckError naming the file: anything unexpected from a converter is wrapped as one."""
        with _named_failures(path):
            store = self.runtime.store
            early: list[PreparedAdapter] = []  # a file read now is converted while its hash is computed

            def ahead(tensors, metadata) -> None:
                early.append(self._convert(path, "", tensors, metadata))

            lora = memory if memory is not None else store.read(path, ahead)
            if sha256 is not None and lora.sha256 != sha256:
                log.warning("%s changed on disk since it was chosen; using its current content", path)
            cached = store.prepared(lora.sha256, self.id)
            if cached is not None:  # the same content was converted before, under another path
                return cached
            prepared = evolve(early[0], sha256=lora.sha256) if early else \
                self._convert(lora.path, lora.sha256, lora.tensors, lora.metadata)
            nbytes = tensors_nbytes(t for patches in prepared.patches.values() for p in patches.values()
                                    for t in p.tensors())
            store.keep_prepared(lora.sha256, self.id, prepared, nbytes)
            return prepared

    def _convert(self, path: str, sha256: str, tensors, metadata) -> PreparedAdapter:
        converted = convert(path, tensors, metadata, self.family)
        return prepare(path, sha256, converted, metadata, self.family, self._indexes, self.models(), self._weights)

    def describe(self, path: str, name: str | None = None, strength_model: float = 1.0, strength_clip: float = 1.0,
                 memory: LoraFile | None = None, allow_partial: bool | None = None) -> tuple[AdapterSpec, LoadReport]:
        """The spec of an adapter for this pipeline and what its file matched, checked without changing
        anything (IncompatibleLoraError, LoraFileError, SpecError). A file that would apply only in part is
        refused unless ``allow_partial`` (default: the runtime's LORADECK_ALLOW_PARTIAL setting)."""
        prepared = self.prepare(path, memory=memory)
        allow = self.runtime.settings.allow_partial if allow_partial is None else allow_partial
        with _named_failures(path):
            check_complete(prepared, self.family, allow)
            return adapter_spec(path, prepared.sha256, name, strength_model, strength_clip, memory), prepared.report

    def describe_pair(self, high: str, low: str, name: str | None = None, high_strength: float = 1.0,
                      low_strength: float = 1.0, high_memory: LoraFile | None = None,
                      low_memory: LoraFile | None = None, allow_partial: bool | None = None):
        """One adapter from a high-noise / low-noise pair of files (Wan 2.2's experts): ``high`` into the denoiser,
        ``low`` into the first expert, each checked as ``describe`` checks a file. Returns (spec, (high report, low
        report)), each report counting the components its file serves; SpecError when this pipeline has no expert
        to take the low-noise file."""
        experts = [c for c in self.family.experts if c in self.models()]
        if not experts:
            title = self.family.title
            has = f"this {title} model has" if self.family.experts else f"{title} pipelines have"
            raise SpecError(f"{has} one denoiser ({self.family.denoiser}): a high/low-noise LoRA pair needs a model "
                            "with two experts (Wan 2.2 A14B: transformer and transformer_2). Load one file with Load "
                            "LoRA instead (the high-noise one is usually meant for Wan 2.1 models).")
        high_spec, high_report = self.describe(high, memory=high_memory, allow_partial=allow_partial)
        low_spec, low_report = self.describe(low, memory=low_memory, allow_partial=allow_partial)
        spec = pair_spec(high_spec, low_spec, experts[0], high_strength, low_strength, name)
        served = lambda report, into: replace(report, components=tuple(  # noqa: E731
            (c, m, t) for c, m, t in report.components if spec.takes(into, c)))
        return spec, (served(high_report, None), served(low_report, (experts[0],)))

    def param_strengths(self, key: str, component: str) -> list[tuple[float, bool]]:
        """(strength, fused) of adapter ``key`` in each parameter of ``component`` whose whole difference it adds."""
        return self._params.strengths(key, component)

    def param_differences(self, stack: StackSpec, component: str) -> dict[str, tuple[str, str, torch.Tensor]]:
        """path -> (module, param, difference) that ``stack`` adds to whole parameters of ``component`` (float32)."""
        active, fused = self.plan(stack, component)
        return self._params.summed(component, {**active, **fused})

    def batch_conflict(self, stacks: Sequence[StackSpec]) -> str | None:
        """Why ``stacks`` cannot run as the rows of one batch, or None: fused adapters and whole-parameter
        differences live in weights every row shares, so they must be the same in every stack."""
        reason = mixed_batch.fused_differs(stacks)
        if reason:
            return reason
        names = mixed_batch.differing(stacks, self._changes_params)
        if names:
            return (f"adapters ({', '.join(names)}) change whole parameters (biases, norms) differently between "
                    "cells, and those are shared by every row of a batch")
        return None

    def _changes_params(self, key: str, spec: AdapterSpec) -> bool:
        if key in self._loaded:
            return self._params.touches(key)
        for path, sha256, memory, into in spec.sources():
            prepared = self.prepare(path, sha256, memory)
            if any(isinstance(p, ParamDelta) for c, patches in prepared.patches.items() if spec.takes(into, c)
                   for p in patches.values()):
                return True
        return False

    def plan(self, stack: StackSpec, component: str, t: float = 0.0):
        """(active, to fuse) for one component: adapter key -> (module name -> strength), at position ``t``
        (0..1) over the steps for adapters with a strength schedule."""
        active, to_fuse = {}, {}
        for key, spec in stack.keyed():
            if not spec.enabled or not spec.loads_into(component):
                continue
            weight = spec.effective_weight(component, self.family, t)
            (to_fuse if spec.fused_in(component) else active)[key] = self._weight_fn(spec.blocks, component, weight)
        return active, to_fuse

    def block_rule(self, blocks: tuple):
        """module name -> multiplier for the denoiser (and its experts, which name their blocks alike); validates
        ``blocks`` (SpecError) and caches."""
        rule = self._block_rules.get(blocks)
        if rule is None:
            denoiser = self.models()[self.family.denoiser]
            rule = self._block_rules[blocks] = block_weights.denoiser_rule(blocks, self.family, denoiser)
        return rule

    # -- reconciling ---------------------------------------------------------------------
    def apply(self, stack: StackSpec, source: str = "", source_title: str = "") -> PipelineSnapshot:
        """Make the pipeline compute exactly what ``stack`` describes; returns the snapshot read back.
        ``source`` (a node id) and ``source_title`` say who asked, so each graph branch's stack can be shown.

        One transaction: reconciling, reading the snapshot back, publishing it and the bookkeeping. If any of
        it fails, the pipeline is reconciled to the last stack that applied (bit for bit) and the error raised
        is a LoraDeckError (anything unexpected is wrapped)."""
        with self.lock:
            previous, previous_snapshot, loaded_before = self._applied, self._snapshot, set(self._loaded)
            try:
                rescaled = self._reconcile(stack, fast=True)
                self._remember(stack)
                self._release_unreferenced(stack)
                if rescaled:  # strengths alone changed: only those adapters' scales are read again
                    snapshot = reread_strengths(self, previous_snapshot, previous, stack, self._loaded, source,
                                                source_title)
                else:
                    snapshot = read_snapshot(self, stack, self._loaded, source, source_title)
                self._applied, self._snapshot = stack, snapshot
                self.runtime.events.publish(snapshot)
                self._keep_branch(snapshot)
            except BaseException as exc:
                self._live.pop(id(stack), None)
                self._applied, self._snapshot = previous, previous_snapshot
                self._roll_back(previous, loaded_before)
                if isinstance(exc, LoraDeckError) or not isinstance(exc, Exception):
                    raise
                names = ", ".join(stack.names) or "none"
                raise LoraDeckError(f"applying the LoRA stack ({names}) failed unexpectedly ({type(exc).__name__}: "
                                    f"{exc}); the pipeline was returned to its previous stack. Please report this "
                                    "with the LoRA files involved.") from exc
        return snapshot

    def _keep_branch(self, snapshot: PipelineSnapshot) -> None:
        with self._branch_lock:
            self._branches.pop(snapshot.source, None)
            self._branches[snapshot.source] = snapshot
            while len(self._branches) > MAX_BRANCHES:
                self._branches.popitem(last=False)

    def write_step(self, stack: StackSpec, t: float) -> None:
        """Between denoising steps: the denoisers' scales for ``stack`` (applied) at position ``t`` of the steps,
        for strength schedules. A scale write per layer; nothing is loaded, fused or published."""
        with self.lock:
            denoisers = [c for c in self.family.denoisers if c in self.models()]
            for component in denoisers:
                active = self.plan(stack, component, t)[0]
                peft_ops.activate(self.layers(component), active)
                if self.envelope is not None:  # the compiled forward reads its own scale rows
                    for key in active:
                        self.envelope.write_scales(self.carriers(component, key), key)
            if denoisers:
                self._write_params(stack, tuple(denoisers), t)

    @contextlib.contextmanager
    def rows(self, stacks: Sequence[StackSpec]):
        """Inside: one batch runs row i with ``stacks[i]`` (repeating for k x rows), through peft's mixed-batch
        inference (mixed_batch.py). Yields the Router (``update(t)`` for schedules). Afterwards the layers hold
        the applied stack again. Fused adapters must be the same in every stack (MixedBatchError)."""
        reason = self.batch_conflict(stacks)
        if reason:
            raise mixed_batch.MixedBatchError(reason)
        with self.lock:
            self.apply(mixed_batch.union(stacks))
            router = mixed_batch.Router(self, stacks)
            try:
                router.update(0.0)
                yield router
            finally:
                router.remove()
                self._reconcile(self._applied, fast=False)

    def _roll_back(self, previous: StackSpec, loaded_before: set[str]) -> None:
        """Back to ``previous``, without the adapters the failed apply injected; if even that fails, to no
        adapters at all (the base weights, exactly)."""
        log.info("reconcile failed; returning %s to its previous stack", self.label)
        try:
            self._reconcile(previous, fast=False)
            wanted = {k for k, _ in previous.keyed()}
            for key in [k for k in self._loaded if k not in loaded_before and k not in wanted]:
                self._delete(key)
        except Exception:
            log.exception("returning %s to its previous stack failed; removing every adapter", self.label)
            self._clear()

    def _clear(self) -> None:
        self._layer_index.clear()  # after a failure the index may be stale: walk the modules again
        self._params.restore(self.models(), in_place=self.envelope is not None)
        for component in self.models():
            fusion.restore(self.layers(component))
        for key in list(self._loaded):
            self._delete(key, thorough=True)
        self._applied = StackSpec()
        self._snapshot = read_snapshot(self, self._applied, {})

    def _reconcile(self, stack: StackSpec, fast: bool) -> bool:
        """Bring the layers to ``stack``; True when only strengths changed (``fast``: then scale writes did it)."""
        keyed = stack.keyed()
        loads = self.loads
        for key, spec in keyed:
            self._ensure_loaded(key, spec)
        names = {k: s.name for k, s in keyed}
        changed = _rescaled(self._applied, stack) if fast and loads == self.loads else None
        if changed is not None:  # only strengths of active adapters changed: scale writes, nothing else
            self._write_scales(changed)
            self._write_params(stack)
            return True
        # under a compiled graph weights keep their storage (cudagraphs record addresses)
        in_place = self.envelope is not None or stack.compile is not None
        for component in self.models():
            layers = self.layers(component)
            active, to_fuse = self.plan(stack, component)
            if fusion.needs_refuse(layers, to_fuse):
                fusion.restore(layers, in_place)
            peft_ops.activate(layers, active)
            if to_fuse and fusion.needs_refuse(layers, to_fuse):
                fusion.fuse(layers, to_fuse, stack.safe_fusing, names, in_place)
        self._write_params(stack)
        self._evict({k for k, _ in keyed})
        devices.place(self, {k for k, _ in keyed})
        self.envelope = compiled.reconcile(self, stack.compile, names)
        return False

    def _write_scales(self, changed) -> None:
        denoisers = self.family.denoisers
        for key, spec in changed:
            for component in self.models():
                weight = spec.effective_weight(component, self.family)
                # a number when every module gets the same strength: no call per layer
                strength = self._weight_fn(spec.blocks, component, weight) if spec.blocks else weight
                peft_ops.write_scales(self.index(component).slots(key), key, strength)
                if component in denoisers and self.envelope is not None:
                    self.envelope.write_scales(self.carriers(component, key), key)

    def _write_params(self, stack: StackSpec, components=None, t: float = 0.0) -> None:
        """The whole-parameter differences of ``stack``'s adapters summed into their parameters (only those whose
        terms changed are written); fused and active adapters alike."""
        if not self._params.keys():
            return
        plans = {c: self.plan(stack, c, t) for c in (components or self.models())}
        in_place = self.envelope is not None or stack.compile is not None
        self._params.write(self.models(), lambda c: {**plans[c][0], **plans[c][1]}, lambda c: set(plans[c][1]),
                           in_place, tuple(plans))

    def _weight_fn(self, blocks: tuple, component: str, weight: float):
        if not blocks:
            return _constant(weight)
        if component not in self.family.denoisers:
            return _constant(weight * block_weights.text_multiplier(blocks))
        rule = self.block_rule(blocks)
        return lambda name: weight * rule(name)

    def _ensure_loaded(self, key: str, spec: AdapterSpec) -> None:
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return
        files = [(self.prepare(path, sha256, memory), into) for path, sha256, memory, into in spec.sources()]
        models = self.models()
        self._sha256[key] = tuple(prepared.sha256 for prepared, _ in files)
        try:
            for component, patches in ((c, p) for prepared, into in files for c, p in prepared.patches.items()
                                       if spec.takes(into, c)):
                if component in models:
                    pairs = {n: p for n, p in patches.items() if not isinstance(p, ParamDelta)}
                    index = self.index(component)
                    if pairs:
                        index.added(key, peft_ops.inject(models[component], key, pairs, index.modules))
                    for path, patch in patches.items():
                        if isinstance(patch, ParamDelta):
                            module, _, name = path.rpartition(".")
                            device = parameter(models[component], module, name).device
                            self._params.add(key, component, path, module, name, patch.delta.to(device))
        except BaseException as exc:
            self._delete(key, thorough=True)
            if not isinstance(exc, Exception):
                raise
            raise LoraDeckError(f"LoRA file {spec.path!r}: could not be applied ({exc}); the pipeline is unchanged. "
                                "Please report this with the file's key names.") from exc
        self._loaded[key] = _combined_report(spec, files)
        self.loads += 1

    def _delete(self, key: str, thorough: bool = False) -> None:
        """Remove adapter ``key``: its layers (wrappers left empty go back to the base module) and every
        reference to its tensors. Its file and converted tensors leave the store too unless something still
        refers to that content: another loaded adapter of this pipeline, or a stack applied here that is still
        alive (a graph branch or a variable: it may come back, and the store keeps them within its budget).
        ``thorough`` walks every module (after a failed injection)."""
        for component, model in self.models().items():
            index = self.index(component)
            unwrapped = peft_ops.delete(model, key, None if thorough else index.carriers(key))
            if thorough:
                self._layer_index.pop(component, None)
            else:
                index.deleted(key, unwrapped)
        if self.envelope is not None:
            self.envelope.forget(key)
        self._params.remove(key, self.models(), in_place=self.envelope is not None)
        self._loaded.pop(key, None)
        for sha256 in self._sha256.pop(key, ()):
            if not self._in_use(sha256) and not self._in_live_stack(sha256):
                self.runtime.store.forget(sha256, self.id)

    def _in_use(self, sha256: str) -> bool:
        """Whether a loaded adapter still holds this content (as its own file or a part file)."""
        return any(sha256 in held for held in self._sha256.values())

    def _in_live_stack(self, sha256: str) -> bool:
        live = (ref() for ref in self._live.values())
        return any(sha256 in spec.sha256s for stack in live if stack is not None for spec in stack.adapters)

    def _remember(self, stack: StackSpec) -> None:
        self._live[id(stack)] = weakref.ref(stack)

    def _release_unreferenced(self, stack: StackSpec) -> None:
        """Remove adapters no live stack references (a branch whose stacks are gone no longer holds memory)."""
        wanted = {k for k, _ in stack.keyed()}
        for ident, ref in list(self._live.items()):
            alive = ref()
            if alive is None:
                del self._live[ident]
            elif alive is not stack:
                wanted.update(k for k, _ in alive.keyed())
        for key in [k for k in self._loaded if k not in wanted]:
            self._delete(key)

    def _evict(self, wanted: set[str]) -> None:
        for key in list(self._loaded):
            if len(self._loaded) <= self.runtime.settings.max_adapters:
                break
            if key not in wanted:
                self._delete(key)

    def release(self, keep: StackSpec | None = None) -> None:
        """Remove every injected adapter that ``keep`` (default: the applied stack) does not use: its layers go,
        and so do its file and converted tensors in the store, with those of adapters removed earlier that no
        live stack describes any more."""
        with self.lock:
            wanted = {k for k, _ in (keep or self._applied).keyed()}
            for key in [k for k in self._loaded if k not in wanted]:
                self._delete(key)
            for sha256 in self.runtime.store.prepared_for(self.id):
                if not self._in_use(sha256) and not self._in_live_stack(sha256):
                    self.runtime.store.forget(sha256, self.id)

    def unload_all(self) -> None:
        """Remove every adapter and restore every fused layer, drop the compile envelope: the pipeline as it
        was loaded, and nothing of its adapters left in the store (stacks still alive elsewhere reload)."""
        with self.lock:
            self._live.clear()
            self.apply(StackSpec())
            self.release()
            self.uncompile()

    def uncompile(self) -> None:
        """Run the denoiser eagerly again and remove the compile envelope's layers (the applied stack stays)."""
        with self.lock:
            self._applied = replace(self._applied, compile=None)
            if self.envelope is not None:
                self.envelope.release(self)
                self.envelope = None
                for component in self.family.denoisers:
                    self._layer_index.pop(component, None)

    def set_device(self, keys, device) -> None:
        """Move adapters' LoRA tensors to ``device`` now (diffusers' ``set_lora_device``)."""
        with self.lock:
            devices.move(self, keys, device)


def _constant(weight: float):
    return lambda _name: weight


@contextlib.contextmanager
def _named_failures(path: str):
    """LoraDeckErrors pass; anything else (a converter or peft meeting something unforeseen) becomes a
    LoraFileError naming the file, so callers only ever see the project's own errors."""
    try:
        yield
    except LoraDeckError:
        raise
    except Exception as exc:
        log.debug("unexpected failure checking %s", path, exc_info=True)
        raise LoraFileError(path, f"could not be checked against this pipeline ({type(exc).__name__}: "
                            f"{str(exc)[:300]})", "The file is damaged or in a layout LoRA Deck does not know; please "
                            "report this with the file's key names.") from exc


def _identity(spec: AdapterSpec) -> tuple:
    """Everything about an adapter in a stack but its name and strengths."""
    return (spec.path, spec.sha256, spec.enabled, spec.fused, spec.fuse_scale, spec.components, spec.fuse_components,
            spec.part_files)


def _combined_report(spec: AdapterSpec, files) -> LoadReport:
    """The load report of an adapter: its own file's, with each part file's counts for the component it serves."""
    (own, _), parts = files[0], files[1:]
    if not parts:
        return own.report
    counts = [(c, m, t) for c, m, t in own.report.components if spec.takes(None, c)]
    for prepared, into in parts:
        counts += [(c, m, t) for c, m, t in prepared.report.components if c in into]
    return replace(own.report, components=tuple(sorted(counts)))


def _rescaled(old: StackSpec, new: StackSpec):
    """The (key, spec) pairs whose strengths alone changed when that is all that changed from ``old`` (the
    stack the layers hold) to ``new``; None when anything else changed (adapters, enabled, fused, compile)."""
    if old is new:
        return ()
    if (old.safe_fusing, old.compile, len(old.adapters)) != (new.safe_fusing, new.compile, len(new.adapters)):
        return None
    changed = []
    for (key_a, a), (key_b, b) in zip(old.keyed(), new.keyed(), strict=True):
        if a == b:
            continue
        if key_a != key_b or a.fused or _identity(a) != _identity(b):
            return None
        if b.enabled:
            changed.append((key_b, b))
    return changed
