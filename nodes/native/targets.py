"""One ComfyUI (MODEL, CLIP) pair as LoRA Deck sees it: its family, its mirror and an owner that describes files.

The owner is LoRA Deck's own ``PipelineOwner`` over the mirror's module trees: reading through the adapter store,
conversion, matching, the magnitude bound and the refusal of partial loads are the ones Load LoRA uses; only
``describe`` (and its cached conversions) is used here, nothing is ever injected into the mirror. One target is
kept per ComfyUI model object (ComfyUI clones share it), and its conversions leave the store with it.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from ...core.adapters.owner import PipelineOwner
from ...core.errors import PipelineLoadError
from ...core.families import FAMILIES
from .mirror import Mirror, comfy_names

# ComfyUI's model configs (comfy/supported_models.py, ``type(model.model.model_config).__name__``) -> family
COMFY_FAMILIES = {"SD15": "sd1", "SD20": "sd1", "SDXL": "sdxl", "SD3": "sd3", "Flux": "flux", "FluxSchnell": "flux",
                  "Chroma": "chroma", "ZImage": "zimage", "QwenImage": "qwenimage"}


@dataclass(frozen=True)
class ComfyModels:
    """What the host read from ComfyUI for one (MODEL, CLIP) pair: its model config's class name, ComfyUI's
    LoRA key maps, and the original (unpatched) tensors by state-dict key."""

    kind: str
    unet_keys: dict
    clip_keys: dict
    model_tensors: dict
    clip_tensors: dict


def family_of_kind(kind: str):
    key = COMFY_FAMILIES.get(kind)
    if key is None or key not in FAMILIES:
        known = ", ".join(sorted(COMFY_FAMILIES))
        raise PipelineLoadError(f"this MODEL is ComfyUI's {kind!r}, which LoRA Deck's LoRA Loader does not handle "
                                f"yet (it handles {known}); use ComfyUI's own LoRA loader for it")
    return FAMILIES[key]


class Target:
    """A family, the mirror of one ComfyUI model (+ text encoders) and an owner describing files against it."""

    def __init__(self, models: ComfyModels, runtime, pipeline_id: str):
        self.family = family_of_kind(models.kind)
        names = comfy_names(self.family, models.unet_keys, models.clip_keys, models.model_tensors,
                            models.clip_tensors)
        tensors = {**models.model_tensors, **models.clip_tensors}
        self.mirror = Mirror(self.family, names, tensors.__getitem__)
        label = f"{models.kind} (ComfyUI MODEL)"
        # the mirror never runs: a family's fix (repairs of diffusers' pipelines, e.g. Chroma's mask hook) is not for it
        family = dataclasses.replace(self.family, fix=None)
        self.owner = PipelineOwner(SimpleNamespace(**self.mirror.models), family, label, runtime, pipeline_id)


class Targets:
    """Targets by the identity of ComfyUI's model objects (held weakly: when ComfyUI drops a model, its target
    and the store's conversions for it go too)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items: dict[tuple[int, int], tuple[weakref.ref, weakref.ref, Target]] = {}
        self._ids = itertools.count(1)

    def get(self, model_object, clip_object, read: Callable[[], ComfyModels], runtime) -> Target:
        key = (id(model_object), id(clip_object))
        with self._lock:
            found = self._items.get(key)
            if found is not None and found[0]() is model_object and found[1]() is clip_object:
                return found[2]
        target = Target(read(), runtime, f"comfy{next(self._ids)}")
        with self._lock:
            self._items[key] = (weakref.ref(model_object), weakref.ref(clip_object), target)
        for obj in (model_object, clip_object):
            weakref.finalize(obj, self._drop, key, target, runtime)
        return target

    def _drop(self, key, target: Target, runtime) -> None:
        with self._lock:
            if key in self._items and self._items[key][2] is target:
                del self._items[key]
        runtime.store.drop_pipeline(target.owner.id)
