"""Immutable views of a pipeline's adapter state, read back from the model itself.

Routes and panels read these from any thread; only the owner builds them, under its lock. What the
layers hold (``state``, ``fused``, ``layer_strengths``) is read from the layers; what the user asked for
(``weights``, ``blocks``, ``enabled``) comes from the stack, so the panel can show both and a test can
check that they agree.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from ..frozen import evolve
from . import fusion

ACTIVE, DISABLED, FUSED, MIXED = "active", "disabled", "fused", "mixed"


@dataclass(frozen=True)
class AdapterView:
    key: str
    name: str
    file: str
    sha256: str
    enabled: bool  # what the stack asks for
    fused: bool  # True when the layers carry it baked in (read from the layers)
    weights: tuple[tuple[str, float], ...]  # component -> strength set for it (before block weights)
    layers: int  # layers carrying this adapter
    report: dict
    state: str = ACTIVE  # from the layers: active, disabled (loaded, not active), fused, or mixed
    blocks: str = ""  # block weights as Set Adapter Weights reads them ("" = none)
    # component -> (lowest, highest) strength over its layers, as the layers have it (block weights spread it)
    layer_strengths: tuple[tuple[str, float, float], ...] = ()
    # strength schedules over the steps, as plain data: (component, written form), e.g. ("unet", "ramp(1, 0.2)");
    # ``weights`` then shows the strength at the first step (what the layers hold between runs)
    schedule: tuple[tuple[str, str], ...] = ()
    # the adapter's other files and the component each serves: (component, file), e.g. a Wan 2.2 pair's
    # ("transformer_2", ".../lightning_low_noise.safetensors"); ``file`` serves the rest
    part_files: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PipelineSnapshot:
    pipeline_id: str
    label: str
    family: str
    dtype: str
    device: str
    adapters: tuple[AdapterView, ...]
    applied_at: float
    source: str = ""  # who applied it: a node id in a graph ("" = the Python API)
    source_title: str = ""  # that node's title, for people
    # how people call some components of this pipeline: (component, label), e.g. Wan 2.2's experts
    # ("transformer", "high noise"), ("transformer_2", "low noise"); display only
    labels: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


def blocks_text(blocks: tuple) -> str:
    """(("down", 0.9), ("up.block_1", (0.4, 0.8, 1.0))) -> 'down=0.9, up.block_1=[0.4,0.8,1]' (lbw as a list)."""
    parts = []
    for key, value in blocks:
        if isinstance(value, (tuple, list)):
            numbers = ",".join(f"{float(v):g}" for v in value)
            parts.append(f"{key}={numbers}" if key == "lbw" else f"{key}=[{numbers}]")
        else:
            parts.append(f"{key}={float(value):g}")
    return ", ".join(parts)


def _component_state(layers, slots, key: str) -> tuple[dict[str, int], list[float]]:
    """({state: layer count}, per-layer strengths) for one adapter in one component, read from its layers
    (``slots``: the index's scale slots of ``key``, in the same order as ``layers``)."""
    states: dict[str, int] = {}
    strengths = []
    for (_, layer), slot in zip(layers, slots, strict=True):
        # peft keeps these as plain attributes: reading the instance dict skips nn.Module's slow paths (this
        # runs for every layer of an adapter whose state may have changed)
        attrs = layer.__dict__
        scaling = attrs.get("scaling", layer.scaling)
        if key not in scaling:
            continue
        baked = attrs.get(fusion.FUSED)
        active = layer._active_adapter  # peft's active_adapters property, without its per-call list building
        if baked and key in baked:
            state, value = FUSED, baked[key]
        elif key == active or (not isinstance(active, str) and key in active):
            state, value = ACTIVE, _strength(slot, key)
        else:
            state, value = DISABLED, 0.0
        states[state] = states.get(state, 0) + 1
        strengths.append(float(value))
    return states, strengths


def _strength(slot, key: str) -> float:
    """The strength a layer's scale stands for (peft's ``set_scale`` undone)."""
    return slot.scaling[key] * slot.divisor / slot.alpha


def _overall(states: dict[str, int]) -> str:
    """One word for all layers: their common state, or 'mixed' (never shown for a stack LoRA Deck applied)."""
    return next(iter(states)) if len(states) == 1 else (MIXED if states else DISABLED)


def _view(owner, key: str, spec, models, report) -> AdapterView:
    per_component, states, layers = [], {}, 0
    for component in models:
        index = owner.index(component)
        counts, strengths = _component_state(index.carriers(key), index.slots(key), key)
        for strength, baked in owner.param_strengths(key, component):  # whole-parameter differences written
            state = FUSED if baked else ACTIVE
            counts[state] = counts.get(state, 0) + 1
            strengths.append(strength)
        if not strengths:
            continue
        layers += len(strengths)
        for state, n in counts.items():
            states[state] = states.get(state, 0) + n
        per_component.append((component, strengths))
    state = _overall(states)
    view = AdapterView(key, spec.name, spec.path, spec.sha256, spec.enabled, state == FUSED, (), layers,
                       report.to_dict() if report is not None else {}, state,
                       part_files=tuple((p.component, p.path) for p in spec.part_files))
    return _as_set(view, owner, spec, models, per_component)


def _as_set(view: AdapterView, owner, spec, models, per_component) -> AdapterView:
    """``view`` with what the stack sets (name, strengths, blocks, schedule) from ``spec``, and the strength
    range of each component's layers (``per_component``: (component, per-layer strengths))."""
    weights = tuple((c, round(spec.effective_weight(c, owner.family), 6)) for c, _ in per_component)
    spread = tuple((c, round(min(values), 6), round(max(values), 6)) for c, values in per_component)
    schedule = tuple((c, s.text()) for c in models if (s := spec.schedule_for(c, owner.family)) is not None)
    return evolve(view, name=spec.name, weights=weights, layer_strengths=spread, blocks=blocks_text(spec.blocks),
                  schedule=schedule)


def read_snapshot(owner, stack, reports, source: str = "", source_title: str = "") -> PipelineSnapshot:
    """What ``owner``'s layers hold for ``stack`` now; ``reports`` maps adapter key -> LoadReport; ``source``
    names who applied it (a node id) so the panel can show each graph branch."""
    models = owner.models()
    views = tuple(_view(owner, key, spec, models, reports.get(key)) for key, spec in stack.keyed())
    return _snapshot(owner, models, views, source, source_title)


def reread_strengths(owner, previous: PipelineSnapshot, old_stack, stack, reports, source: str = "",
                     source_title: str = "") -> PipelineSnapshot:
    """``read_snapshot`` after a change of strengths alone from ``old_stack`` (which ``previous`` read):
    no layer changed state, so the views of unchanged adapters stand as they are and a changed adapter's
    strengths are re-read from its layers' scales; anything not plainly active is read in full."""
    models = owner.models()
    before, old_specs = {v.key: v for v in previous.adapters}, dict(old_stack.keyed())
    views = []
    for key, spec in stack.keyed():
        view = before.get(key)
        if view is not None and old_specs.get(key) == spec:
            views.append(view)
        elif view is not None and view.state == ACTIVE and spec.enabled:
            views.append(_restrengthened(owner, view, key, spec, models))
        else:
            views.append(_view(owner, key, spec, models, reports.get(key)))
    return _snapshot(owner, models, tuple(views), source, source_title)


def _restrengthened(owner, view: AdapterView, key: str, spec, models) -> AdapterView:
    """An active adapter's view after its strengths alone changed: only its layers' scales are read again."""
    per_component = [(c, [*[scaling[key] * divisor / alpha for _, scaling, alpha, divisor in owner.index(c).slots(key)],
                          *(w for w, _ in owner.param_strengths(key, c))]) for c, _ in view.weights]  # _strength
    return _as_set(view, owner, spec, models, per_component)


def _snapshot(owner, models, views: tuple, source: str, source_title: str) -> PipelineSnapshot:
    param = owner.probe_parameter()
    return PipelineSnapshot(
        pipeline_id=owner.id,
        label=owner.label,
        family=owner.family.key,
        dtype=str(param.dtype).replace("torch.", "") if param is not None else "",
        device=str(param.device) if param is not None else "",
        adapters=views,
        applied_at=time.time(),
        source=str(source or ""),
        source_title=str(source_title or ""),
        labels=tuple(owner.family.labels_for(models).items()),
    )
