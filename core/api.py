"""The Python API: the same core the nodes use, for programmers holding a diffusers pipeline.

    deck = Deck(pipe)                         # wrap an existing StableDiffusionPipeline
    deck.add("style.safetensors", model=0.8, clip=0.5)
    deck.set_weights("style", unet=0.6)
    deck.fuse()                               # bake in; deck.unfuse() restores exactly
    image = deck.pipe("a cat").images[0]      # the pipeline is reconciled after each call
    deck.unfuse().set_weights("style", model="ramp(1.0, 0.2)")   # a strength schedule over the steps
    image = deck.pipe("a cat", callback_on_step_end=deck.schedule_callback()).images[0]
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from .adapters.owner import PipelineOwner
from .adapters.snapshot import AdapterView
from .errors import SpecError
from .families import family_of
from .files import sources
from .files.reading import check_path
from .runtime import Runtime, default_runtime
from .stacks import stack_ops, weights_text
from .stacks.schedules import Schedule, position
from .stacks.specs import CompileSpec, StackSpec
from .stacks.strengths import check_strength


@dataclass(frozen=True, eq=False)
class PipelineHandle:
    """What flows between nodes: a shared owner plus an immutable stack. Never mutated."""

    owner: PipelineOwner
    stack: StackSpec = StackSpec()

    def with_stack(self, stack: StackSpec) -> PipelineHandle:
        return PipelineHandle(self.owner, stack)

    def apply(self):
        return self.owner.apply(self.stack)


def open_pipeline(model: str, dtype: str = "auto", config_folders: tuple[str, ...] = (),
                  runtime: Runtime | None = None, *, tokenizer_dirs: tuple[str, ...] = (),
                  local_files=None, text_encoders: Sequence[str] = (), vae: str = "",
                  expert: str = "") -> PipelineHandle:
    """A handle with an empty stack for a built-in name, a diffusers folder or a single-file model (a checkpoint,
    or a denoiser alone from ``models/diffusion_models`` / ``models/unet``: ``.safetensors`` or ``.gguf``), cached
    in the runtime. For single files: ``tokenizer_dirs`` (and the local diffusers folders in ``config_folders``) are
    where tokenizers are looked for, besides ``LORADECK_TOKENIZERS``; ``config_folders`` also give the config values
    a denoiser's shapes cannot tell; ``text_encoders`` / ``vae`` pick those files instead of the ones found beside
    it by keys and shapes; ``expert`` picks a two-expert model's other denoiser file (Wan 2.2 A14B's low-noise
    expert), else it is found beside the denoiser by its usual name; ``local_files`` (a
    ``core.models.single_file.LocalFiles``) names every folder explicitly."""
    runtime = runtime or default_runtime()
    picked = tuple(p for p in text_encoders if p), vae or "", expert or ""
    if local_files is None and (tokenizer_dirs or any(picked)):
        from .models.single_file import LocalFiles

        local_files = LocalFiles.beside(model, tuple(tokenizer_dirs) + tuple(config_folders))
    if local_files is not None and any(picked):
        local_files = local_files.picked(*picked)
    return PipelineHandle(runtime.pipelines.get(model, dtype, tuple(config_folders), local_files,
                                                parts=picked if any(picked) else ()))


class Deck:
    """An imperative wrapper: each call edits the stack and reconciles the pipeline to it."""

    def __init__(self, pipe, label: str | None = None, runtime: Runtime | None = None):
        runtime = runtime or default_runtime()
        pipeline_id = runtime.pipelines.new_id()
        self.owner = PipelineOwner(pipe, family_of(pipe), label or f"{type(pipe).__name__} ({pipeline_id})",
                                   runtime, pipeline_id)
        self.stack = StackSpec()

    @property
    def pipe(self):
        return self.owner.pipe

    def _set(self, stack: StackSpec) -> Deck:
        self.owner.apply(stack)
        self.stack = stack
        return self

    def add(self, source, name: str | None = None, model: float = 1.0, clip: float = 1.0,
            weight_name: str | None = None, network_alphas: Mapping | None = None,
            allow_partial: bool | None = None, components: Sequence[str] = ()) -> Deck:
        """Load a LoRA: a file path, a folder (+ ``weight_name``), or a ``dict[str, Tensor]`` (+ diffusers'
        ``network_alphas``), as ``load_lora_weights`` takes them. ``model`` is the denoiser strength,
        ``clip`` the text encoders'. A file that fits only in part is refused unless ``allow_partial``.
        ``components`` loads the file into those components only (``["unet"]``, ``["text_encoder"]``, or the
        groups ``model`` / ``clip``), as diffusers' ``load_lora_into_unet`` / ``_text_encoder`` /
        ``_transformer`` do; the other parts of the file are not loaded."""
        chosen = stack_ops.components_of(components, self.owner.family)
        path, memory = self._source(source, name, weight_name, network_alphas)
        adapter, _ = self.owner.describe(path, name, model, clip, memory, allow_partial)
        return self._set(self.stack.add(replace(adapter, components=chosen) if chosen else adapter))

    def add_pair(self, high, low, name: str | None = None, high_noise: float = 1.0, low_noise: float = 1.0,
                 allow_partial: bool | None = None) -> Deck:
        """A Wan 2.2 LoRA pair as one adapter: the ``high`` noise file into ``transformer``, the ``low`` noise file
        into ``transformer_2``, at strengths ``high_noise`` / ``low_noise`` (each a path or a dict of tensors).
        ``set_weights(name, transformer=..., transformer_2=...)`` changes them; the same files as two adapters:
        ``add(high, components=["transformer"])`` and ``add(low, components=["transformer_2"])``."""
        (high_path, high_memory), (low_path, low_memory) = (self._source(s, name) for s in (high, low))
        adapter, _ = self.owner.describe_pair(high_path, low_path, name, high_noise, low_noise, high_memory, low_memory,
                                              allow_partial)
        return self._set(self.stack.add(adapter))

    def _source(self, source, name: str | None, weight_name: str | None = None, network_alphas=None):
        """(path, in-memory file or None) of a LoRA source (a path, a folder + ``weight_name``, a dict)."""
        if isinstance(source, Mapping):
            memory = sources.in_memory(source, network_alphas, name if isinstance(name, str) and name else "state_dict")
            return memory.path, memory
        if isinstance(source, (str, os.PathLike)):
            path = check_path(os.fspath(source))
            if os.path.isdir(path):
                path = sources.weight_file(path, weight_name, self.owner.runtime.settings.allow_pickle)
            return path, None
        raise SpecError(f"a LoRA source is a file path, a folder or a dict of tensors, got {type(source).__name__}")

    def set_weights(self, name: str, enabled: bool | None = None, blocks: dict | None = None,
                    **weights: float | str | Schedule) -> Deck:
        """e.g. ``set_weights("style", model=0.5)``, ``set_weights("style", text_encoder=0)``,
        ``set_weights("style", blocks={"down": 0.9, "up.block_1": [0.4, 0.8, 1.0]})``, or a strength schedule
        over the steps for the denoiser: ``set_weights("style", model="1.0@0-0.5, 0.2@0.5-1")`` (or
        ``schedules.ramp(1.0, 0.2)``); schedules apply in ``generate`` or with ``schedule_callback()``."""
        entries = None
        if blocks is not None:
            entries = tuple((k, tuple(v) if isinstance(v, (list, tuple)) else float(v)) for k, v in blocks.items())
            self.owner.block_rule(entries)
        family = self.owner.family
        values = {k: check_strength(v, f"set_weights {k}") if type(v) in (int, float) else  # a number: as parsed
                  weights_text.strength_value(k, v.text() if isinstance(v, Schedule) else str(v), family,
                                              f"set_weights {k}") for k, v in weights.items()}
        return self._set(stack_ops.set_weights(self.stack, name, values, enabled, entries))

    def schedule_callback(self):
        """A diffusers ``callback_on_step_end`` that writes the scheduled strengths between steps, for calling
        ``deck.pipe(...)`` directly (``generate`` does this by itself)."""
        owner, stack = self.owner, self.stack

        def callback(pipe, step, timestep, kwargs):
            total = int(getattr(pipe, "_num_timesteps", 0) or 0)
            # the next step's strengths; after the last one, the first step's again (what the stack says)
            owner.write_step(stack, position(step + 1, total) if step + 1 < total else 0.0)
            return kwargs

        return callback

    def set_adapters(self, names: str | Sequence[str], weights=None) -> Deck:
        """diffusers' ``set_adapters``: these adapters at these weights (a float, a list, or
        one ``{"unet": w, "text_encoder": w}`` / ``{"model": w, "clip": w}`` dict per adapter); every other
        adapter of the stack is disabled. One reconcile for all of them: a strength change is a scale write."""
        names = [names] if isinstance(names, str) else list(names)
        if weights is None:
            weights = [1.0] * len(names)
        elif not isinstance(weights, (list, tuple)):
            weights = [weights] * len(names)
        if len(weights) != len(names):
            raise SpecError(f"set_adapters: {len(names)} names but {len(weights)} weights")
        for name in names:
            self.stack.get(name)
        stack = self.stack
        for name, weight in zip(names, weights, strict=True):
            changes = dict(weight) if isinstance(weight, Mapping) else {"model": weight, "clip": weight}
            stack = stack_ops.set_weights(stack, name, changes, enabled=True)
        for adapter in stack.adapters:
            if adapter.name not in names and adapter.enabled:
                stack = stack_ops.set_weights(stack, adapter.name, enabled=False)
        return self._set(stack)

    def set_weights_text(self, text: str) -> Deck:
        """The Set Adapter Weights node's text form, one adapter per line."""
        return self._set(weights_text.apply_text(self.stack, text, self.owner.family, self.owner.block_rule))

    def remove(self, name: str) -> Deck:
        """Take one adapter out: its layers are removed from the model and its tensors from the store."""
        self.stack.get(name)
        self._set(replace(self.stack, adapters=tuple(a for a in self.stack.adapters if a.name != name)))
        self.owner.release()
        return self

    def fuse(self, lora_scale: float = 1.0, names: list[str] | None = None, safe_fusing: bool = True,
             components: Sequence[str] = ()) -> Deck:
        """Bake adapters (all enabled, or ``names``) into the weights at ``lora_scale``; with ``components``
        (e.g. ``["unet"]``) only there, as diffusers' ``fuse_lora(components=...)``. Originals are kept."""
        chosen = stack_ops.components_of(components, self.owner.family)
        return self._set(stack_ops.fuse(self.stack, lora_scale, names, safe_fusing, chosen))

    def unfuse(self, components: Sequence[str] = ()) -> Deck:
        """Restore the original weights bit for bit (in ``components`` only, when given)."""
        chosen = stack_ops.components_of(components, self.owner.family)
        return self._set(stack_ops.unfuse(self.stack, chosen, self.owner.family))

    def compile(self, mode: str = "default", backend: str = "inductor", max_rank: int = 64, max_adapters: int = 2,
                targets: str = "linear") -> Deck:
        """Run the denoiser under ``torch.compile``, prepared for hotswap: adding, removing, switching,
        reweighting, enabling and disabling adapters whose ranks fit (``max_rank`` each, ``max_adapters`` at
        once per module) cost 0 recompiles. See ``CompileSpec`` and core/compiled.py. The compile itself
        happens on the first run after this call."""
        spec = CompileSpec(mode=mode, backend=backend, max_rank=int(max_rank), max_adapters=int(max_adapters),
                           targets=targets)
        return self._set(replace(self.stack, compile=spec))

    def uncompile(self) -> Deck:
        """Run the denoiser eagerly again and drop the compile envelope."""
        self.stack = replace(self.stack, compile=None)
        self.owner.uncompile()
        return self

    def set_device(self, names: str | Sequence[str], device) -> Deck:
        """diffusers' ``set_lora_device``: move these adapters' LoRA tensors to ``device`` now. An adapter in
        use is brought back to its layers' device at the next change of the stack; see also
        ``Settings.park_device`` (adapters the stack does not use are parked automatically)."""
        names = [names] if isinstance(names, str) else list(names)
        keys = dict((spec.name, key) for key, spec in self.stack.keyed())
        for name in names:
            self.stack.get(name)
        self.owner.set_device([keys[n] for n in names], device)
        return self

    def active(self) -> tuple[AdapterView, ...]:
        """Adapters as the model has them now (weights per component, fused or not)."""
        return self.owner.snapshot.adapters

    def unload(self) -> Deck:
        self.owner.unload_all()
        self.stack = StackSpec()
        return self
