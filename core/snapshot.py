"""Immutable views of a pipeline's adapter state, read back from the model itself.

Routes and panels read these from any thread; only the owner builds them, under its lock.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from . import fusion


@dataclass(frozen=True)
class AdapterView:
    key: str
    name: str
    file: str
    sha256: str
    enabled: bool
    fused: bool
    weights: tuple[tuple[str, float], ...]  # component -> strength as the layers have it
    layers: int  # layers carrying this adapter
    report: dict
    # strength schedules over the steps, as plain data: (component, written form), e.g. ("unet", "ramp(1, 0.2)");
    # ``weights`` then shows the strength at the first step (what the layers hold between runs)
    schedule: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PipelineSnapshot:
    pipeline_id: str
    label: str
    family: str
    dtype: str
    device: str
    adapters: tuple[AdapterView, ...]
    applied_at: float

    def to_dict(self) -> dict:
        return asdict(self)


def _component_state(carriers, key: str):
    """(layers with key, fused?, strength) for one adapter in one component, read from the first layer
    carrying it (the owner fuses and activates an adapter on all of a component's layers alike)."""
    if not carriers:
        return 0, False, None
    _, layer = carriers[0]
    baked = fusion.live_fused(layer)
    if key in baked:
        return len(carriers), True, baked[key]
    if key in layer.active_adapters:
        return len(carriers), False, layer.scaling[key] * layer.r[key] / layer.lora_alpha[key]
    return len(carriers), False, 0.0


def read_snapshot(owner, stack, reports) -> PipelineSnapshot:
    """What ``owner``'s layers hold for ``stack`` now; ``reports`` maps adapter key -> LoadReport."""
    models = owner.models()
    views = []
    for key, spec in stack.keyed():
        weights, layers, fused = [], 0, False
        for component in models:
            count, is_fused, strength = _component_state(owner.carriers(component, key), key)
            layers += count
            fused = fused or is_fused
            if strength is not None:
                weights.append((component, round(float(strength), 6)))
        report = reports.get(key)
        schedule = tuple((c, s.text()) for c in models if (s := spec.schedule_for(c, owner.family)) is not None)
        views.append(AdapterView(key, spec.name, spec.path, spec.sha256, spec.enabled, fused, tuple(weights),
                                 layers, report.to_dict() if report is not None else {}, schedule))
    denoiser = models.get(owner.family.denoiser)
    param = next(denoiser.parameters()) if denoiser is not None else None
    return PipelineSnapshot(
        pipeline_id=owner.id,
        label=owner.label,
        family=owner.family.key,
        dtype=str(param.dtype).replace("torch.", "") if param is not None else "",
        device=str(param.device) if param is not None else "",
        adapters=tuple(views),
        applied_at=time.time(),
    )
