"""Immutable, validated descriptions of what a pipeline should look like.

Nodes build these; the pipeline owner reconciles the live pipeline to one right before use.
Nothing here touches a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..errors import SpecError
from ..families import check_scheduler_name
from ..frozen import evolve
from ..models.family import CLIP_GROUP, MODEL_GROUP, Family
from ..models.schedulers import DEFAULT as DEFAULT_SCHEDULER
from .schedules import Schedule
from .strengths import MAX_STRENGTH, check_strength

__all__ = ["MAX_STRENGTH", "AdapterSpec", "GenerateParams", "PartFile", "StackSpec", "check_strength",
           "freeze_weights"]


def freeze_weights(weights: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """{'clip': 0.5, 'model': 1} -> (('clip', 0.5), ('model', 1.0)): hashable, order-independent."""
    return tuple(sorted((str(k), v if type(v) is float and -MAX_STRENGTH <= v <= MAX_STRENGTH  # NaN fails this
                         else check_strength(v, f"weight for {k!r}")) for k, v in weights.items()))


_ABSENT = object()


def _lookup(pairs: tuple, key: str):
    """The value of ``key`` in a tuple of (key, value) pairs, or ``_ABSENT``."""
    for name, value in pairs:
        if name == key:
            return value
    return _ABSENT


@dataclass(frozen=True)
class PartFile:
    """A second file of one adapter: ``component`` takes its patches from this file instead of the adapter's own
    (a Wan 2.2 LoRA pair: the high-noise file is the adapter's, the low-noise one goes into ``transformer_2``)."""

    component: str
    path: str
    sha256: str
    memory: object = field(default=None, compare=False, hash=False, repr=False)  # as AdapterSpec.memory

    def __post_init__(self):
        if len(self.sha256) != 64:
            raise SpecError(f"sha256 must be 64 hex characters, got {self.sha256!r}")


@dataclass(frozen=True)
class AdapterSpec:
    """One LoRA file in a stack.

    ``weights`` maps a group (``model``, ``clip``) or a component name (``unet``, ``text_encoder_2``)
    to a strength; a component key beats its group key; anything unnamed is 1.0.
    """

    path: str
    sha256: str
    name: str
    weights: tuple[tuple[str, float], ...] = ((CLIP_GROUP, 1.0), (MODEL_GROUP, 1.0))
    enabled: bool = True
    fused: bool = False
    fuse_scale: float = 1.0
    # per-block multipliers for the denoiser (see block_weights.py): (("down", 0.9), ("lbw", (1.0, ...)))
    blocks: tuple = ()
    # an in-memory adapter's parsed content (a LoraFile); files on disk are read through the store instead
    memory: object = field(default=None, compare=False, hash=False, repr=False)
    # load the file into these components only (diffusers' load_lora_into_unet/...); empty = every part of the file
    components: tuple[str, ...] = ()
    # with ``fused``: the components it is fused in; empty = all (diffusers' fuse_lora(components=...))
    fuse_components: tuple[str, ...] = ()
    # strength schedules over the steps per weights key (schedules.py): (("model", Schedule), ...); that key's
    # number in ``weights`` is the schedule's value at the first step, so everything that reads numbers works
    schedules: tuple[tuple[str, Schedule], ...] = ()
    # other files for some components (PartFile: a Wan 2.2 pair's low-noise file); ``path`` serves the others
    part_files: tuple[PartFile, ...] = ()

    def __post_init__(self):
        if not self.name or not self.name.strip():
            raise SpecError(f"adapter name must not be empty (file {self.path!r})")
        if len(self.sha256) != 64:
            raise SpecError(f"sha256 must be 64 hex characters, got {self.sha256!r}")
        if isinstance(self.weights, Mapping):
            object.__setattr__(self, "weights", freeze_weights(self.weights))
        check_strength(self.fuse_scale, "lora_scale")
        for what in ("components", "fuse_components"):
            object.__setattr__(self, what, tuple(sorted(set(getattr(self, what)))))
        parts = [p.component for p in self.part_files]
        if len(set(parts)) != len(parts):
            raise SpecError(f"adapter {self.name!r} names a file for {parts} more than once per component")
        object.__setattr__(self, "part_files", tuple(sorted(self.part_files, key=lambda p: p.component)))
        if self.fused and self.schedules:
            shown = ", ".join(f"{k}={s.text()}" for k, s in self.schedules)
            raise SpecError(f"adapter {self.name!r} has a strength schedule ({shown}); fused weights cannot change "
                            "between steps. Give it a number before fusing it, or fuse the others (adapter_names).")

    @property
    def weight_map(self) -> dict[str, float]:
        return dict(self.weights)

    def weight_for(self, component: str, family: Family) -> float:
        """Strength of this adapter on one component (before fusing scale)."""
        found = _lookup(self.weights, component)  # the few pairs searched as they are: asked per strength change
        if found is _ABSENT:
            found = _lookup(self.weights, family.group_of(component))
        return 1.0 if found is _ABSENT else found

    def loads_into(self, component: str) -> bool:
        return not self.components or component in self.components

    def sources(self) -> tuple[tuple[str, str, object, tuple[str, ...] | None], ...]:
        """(path, sha256, memory, components) of each file: the adapter's own file for every component but those
        a part file serves (components None: every other one), then each part file for its component."""
        return ((self.path, self.sha256, self.memory, None),
                *((p.path, p.sha256, p.memory, (p.component,)) for p in self.part_files))

    def takes(self, source_components: tuple[str, ...] | None, component: str) -> bool:
        """Whether ``component`` takes its patches from the file whose ``sources()`` entry has ``source_components``."""
        if not self.loads_into(component):
            return False
        if source_components is None:
            return component not in {p.component for p in self.part_files}
        return component in source_components

    @property
    def sha256s(self) -> tuple[str, ...]:
        """The content hashes of every file of the adapter (its own first)."""
        return (self.sha256, *(p.sha256 for p in self.part_files))

    def fused_in(self, component: str) -> bool:
        return self.fused and (not self.fuse_components or component in self.fuse_components)

    def schedule_for(self, component: str, family: Family) -> Schedule | None:
        """The strength schedule of one component (same precedence as ``weight_for``), or None."""
        if not self.schedules:
            return None
        key = component if _lookup(self.weights, component) is not _ABSENT else family.group_of(component)
        found = _lookup(self.schedules, key)
        return None if found is _ABSENT else found

    def weight_at(self, component: str, family: Family, t: float) -> float:
        """Strength of one component at position ``t`` (0..1) over the steps; ``weight_for`` at t = 0."""
        schedule = self.schedule_for(component, family)
        return schedule.at(t) if schedule is not None else self.weight_for(component, family)

    def effective_weight(self, component: str, family: Family, t: float = 0.0) -> float:
        if self.fused_in(component):  # a fused adapter has no schedule (refused above)
            return self.weight_for(component, family) * self.fuse_scale
        return self.weight_at(component, family, t)

    def with_weights(self, **updates: float | Schedule) -> AdapterSpec:
        """New numbers or schedules per key; a number replaces that key's schedule."""
        numbers = {k: v.at(0.0) if isinstance(v, Schedule) else v for k, v in updates.items()}
        schedules = {k: s for k, s in self.schedules if k not in updates}
        schedules.update({k: v for k, v in updates.items() if isinstance(v, Schedule)})
        if self.fused and schedules:  # the one check of __post_init__ these fields take part in
            return replace(self, schedules=tuple(sorted(schedules.items())))  # raises, naming the schedule
        # the other fields are as checked when this spec was made; the new weights are checked here
        return evolve(self, weights=freeze_weights({**self.weight_map, **numbers}),
                      schedules=tuple(sorted(schedules.items())))


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager", "cudagraphs")
COMPILE_TARGETS = ("linear", "all", "loaded")


@dataclass(frozen=True)
class CompileSpec:
    """``torch.compile`` of the denoiser, prepared for hotswap (see core/compiled.py).

    The envelope: each targeted module carries ``max_rank * max_adapters`` rows of low-rank capacity, shared
    by the adapters active there, so any mix whose ranks fit switches, reweights, enables and disables with
    0 recompiles. ``targets``: ``linear`` = every Linear and 1x1 Conv2d of the denoiser, ``all`` = also the
    other Conv2d layers, ``loaded`` = only the modules the loaded adapters touch (the smallest, as diffusers'
    hotswap). Modules an adapter touches are always included; anything beyond recompiles once, logged.
    """

    mode: str = "default"
    backend: str = "inductor"
    max_rank: int = 64
    max_adapters: int = 2
    targets: str = "linear"

    def __post_init__(self):
        for what, allowed in (("mode", COMPILE_MODES), ("targets", COMPILE_TARGETS)):
            if getattr(self, what) not in allowed:
                raise SpecError(f"compile {what} must be one of {list(allowed)}, got {getattr(self, what)!r}")
        if not isinstance(self.backend, str) or not self.backend.strip():
            raise SpecError(f"compile backend must be a torch.compile backend name, got {self.backend!r}")
        for what, top in (("max_rank", 4096), ("max_adapters", 16)):
            value = getattr(self, what)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise SpecError(f"compile {what} must be a whole number from 1 to {top}, got {value!r}")

    @property
    def capacity(self) -> int:
        """Low-rank rows per module, shared by the adapters active there."""
        return self.max_rank * self.max_adapters


@dataclass(frozen=True)
class StackSpec:
    """An ordered set of adapters; display names are unique within a stack. ``compile``: run the denoiser
    compiled, prepared for hotswap (None: eager)."""

    adapters: tuple[AdapterSpec, ...] = ()
    safe_fusing: bool = True
    compile: CompileSpec | None = None

    def __post_init__(self):
        names = [a.name for a in self.adapters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpecError(f"adapter names must be unique in a stack, repeated: {dupes}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.adapters)

    @property
    def scheduled(self) -> bool:
        """True when an enabled adapter has a strength schedule (Generate writes scales between steps)."""
        return any(a.enabled and a.schedules for a in self.adapters)

    def unique_name(self, wanted: str) -> str:
        """``wanted`` or ``wanted (2)``, ``wanted (3)``... whichever is free."""
        name, n = wanted, 1
        while name in self.names:
            n += 1
            name = f"{wanted} ({n})"
        return name

    def add(self, adapter: AdapterSpec) -> StackSpec:
        adapter = replace(adapter, name=self.unique_name(adapter.name))
        return replace(self, adapters=(*self.adapters, adapter))

    def get(self, name: str) -> AdapterSpec:
        for adapter in self.adapters:
            if adapter.name == name:
                return adapter
        raise SpecError(f"no adapter named {name!r} in this stack; it has: {list(self.names) or 'none'}")

    def replace_adapter(self, name: str, new: AdapterSpec) -> StackSpec:
        self.get(name)
        adapters = tuple(new if a.name == name else a for a in self.adapters)
        # the same names: nothing __post_init__ checks has changed (a strength change comes this way)
        return evolve(self, adapters=adapters) if new.name == name else replace(self, adapters=adapters)

    def keyed(self) -> tuple[tuple[str, AdapterSpec], ...]:
        """(internal adapter key, spec) pairs. The key is derived from file content, so the same file
        in two graph branches is one loaded adapter; a second copy in one stack gets ``_2``. Worked out once per
        (immutable) stack: applying one asks for it several times."""
        found = self.__dict__.get("_keyed")
        if found is not None:
            return found
        seen: dict[str, int] = {}
        out = []
        for adapter in self.adapters:
            base = base_key(adapter)
            seen[base] = seen.get(base, 0) + 1
            out.append((base if seen[base] == 1 else f"{base}_{seen[base]}", adapter))
        self.__dict__["_keyed"] = found = tuple(out)  # not a field: equality and hashing ignore it
        return found


MAX_FRAMES = 4097  # frames per video Generate asks for (Wan's 81 at 16 fps is 5 s; 4097 is over 4 minutes)


def base_key(adapter: AdapterSpec) -> str:
    """An adapter's internal key before a copy number (``StackSpec.keyed``): its content, the components it is
    loaded into, its part files."""
    base = "ld_" + adapter.sha256[:16] + "".join("_" + c for c in adapter.components)
    return base + "".join(f"_{p.component}_{p.sha256[:16]}" for p in adapter.part_files)


def copy_number(key: str, adapter: AdapterSpec) -> int:
    """Which copy of its file in one stack the adapter under ``key`` is (1, 2, ...)."""
    base = base_key(adapter)
    return 1 if key == base else int(key[len(base) + 1 :])


@dataclass(frozen=True)
class GenerateParams:
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 20
    cfg: float = 7.0
    width: int = 512
    height: int = 512
    batch_size: int = 1
    scheduler: str = DEFAULT_SCHEDULER  # a name from families.SCHEDULER_CHOICES; "model default" = the pipeline's own
    denoise: float = 1.0  # with an image: diffusers' strength (1 = repaint fully); text-to-image needs 1
    num_frames: int | None = None  # video families: frames per video (None: the family's default); images: None

    def __post_init__(self):
        check_scheduler_name(self.scheduler)
        frames = self.num_frames
        if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int)
                                   or not 1 <= frames <= MAX_FRAMES):
            raise SpecError(f"num_frames must be a whole number from 1 to {MAX_FRAMES}, got {frames!r}")
        try:
            denoise = float(self.denoise)
        except (TypeError, ValueError):
            raise SpecError(f"denoise must be a number between 0 and 1, got {self.denoise!r}") from None
        if not 0.0 <= denoise <= 1.0:  # also refuses NaN
            raise SpecError(f"denoise must be between 0 and 1, got {self.denoise!r}")
        object.__setattr__(self, "denoise", denoise)
        if not 0 <= int(self.seed) <= 0xFFFFFFFFFFFFFFFF:
            raise SpecError(f"seed must be between 0 and 2^64-1, got {self.seed!r}")
        if not 1 <= int(self.steps) <= 1000:
            raise SpecError(f"steps must be between 1 and 1000 (diffusers' schedulers' limit), got {self.steps!r}")
        if not 1 <= int(self.batch_size) <= 64:
            raise SpecError(f"batch_size must be between 1 and 64, got {self.batch_size!r}")
        for what in ("width", "height"):
            value = int(getattr(self, what))
            if value < 8 or value % 8:
                raise SpecError(f"{what} must be a positive multiple of 8, got {value!r}")
        if not math.isfinite(float(self.cfg)):
            raise SpecError(f"cfg must be a finite number, got {self.cfg!r}")
