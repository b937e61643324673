"""The schedulers Generate offers, by the names users know, per pipeline family.

Each is built from the pipeline's own scheduler config (``from_config``: nothing is downloaded; the
model's beta schedule, prediction type and shift carry over) plus a few overrides, as a new object
for one run: the owner's pipeline keeps its scheduler. Which names fit which family (and, where
diffusers' pipelines limit it, which generation mode) is data in SCHEDULERS, never if-chains.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SpecError
from .families import MODES, TXT2IMG, Family

DEFAULT = "model default"  # the pipeline's own scheduler: what workflows saved before 0.2.0 get


@dataclass(frozen=True)
class FromConfig:
    """An override taken from the pipeline's scheduler config (``flow_shift`` <- FlowMatch ``shift``)."""

    key: str
    default: object


SEED = object()  # an override set to the run's seed (the SDE solver's Brownian tree is seeded by config)


@dataclass(frozen=True)
class Scheduler:
    cls: str  # a diffusers scheduler class
    overrides: tuple[tuple[str, object], ...] = ()
    modes: tuple[str, ...] = MODES  # the generation modes diffusers' pipelines of the family run it in
    note: str = ""  # why some modes are missing

    def config(self, base: dict, seed: int) -> dict:
        """The overrides for one run: FromConfig and SEED resolved against ``base`` and ``seed``."""
        out = {}
        for key, value in self.overrides:
            if isinstance(value, FromConfig):
                value = base.get(value.key, value.default)
            out[key] = seed if value is SEED else value
        return out


def _s(cls: str, **overrides) -> Scheduler:
    return Scheduler(cls, tuple(overrides.items()))


KARRAS = {"use_karras_sigmas": True}
# Epsilon / v-prediction UNets (SD 1.x/2.x, SDXL): prediction_type comes from the model's config.
EPSILON = {
    "Euler": _s("EulerDiscreteScheduler"),
    "Euler a": _s("EulerAncestralDiscreteScheduler"),
    "Heun": _s("HeunDiscreteScheduler"),
    "DPM2": _s("KDPM2DiscreteScheduler"),
    "DPM2 a": _s("KDPM2AncestralDiscreteScheduler"),
    "LMS": _s("LMSDiscreteScheduler"),
    "LMS Karras": _s("LMSDiscreteScheduler", **KARRAS),
    "DPM++ 2M": _s("DPMSolverMultistepScheduler"),
    "DPM++ 2M Karras": _s("DPMSolverMultistepScheduler", **KARRAS),
    "DPM++ 2M SDE": _s("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++"),
    "DPM++ 2M SDE Karras": _s("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++", **KARRAS),
    # A1111's "DPM++ SDE" (k-diffusion sample_dpmpp_sde): torchsde's Brownian tree, seeded by the run's seed
    "DPM++ SDE": _s("DPMSolverSDEScheduler", noise_sampler_seed=SEED),
    "DPM++ SDE Karras": _s("DPMSolverSDEScheduler", noise_sampler_seed=SEED, **KARRAS),
    "DDIM": _s("DDIMScheduler"),
    "DDPM": _s("DDPMScheduler"),
    # A1111's PLMS; SD checkpoints ship it with skip_prk_steps (Runge-Kutta warm-up steps need many steps)
    "PNDM": _s("PNDMScheduler", skip_prk_steps=True),
    "UniPC": _s("UniPCMultistepScheduler"),
    "DEIS": _s("DEISMultistepScheduler"),
    "LCM": _s("LCMScheduler"),
}

_FLOW_ONLY_TXT2IMG = ("diffusers' SD3 and Flux img2img/inpainting pipelines noise the input image with "
                      "scheduler.scale_noise, which only the FlowMatch schedulers have")


def _flow_sigmas(cls: str, **extra) -> Scheduler:
    overrides = {"use_flow_sigmas": True, "prediction_type": "flow_prediction",
                 "flow_shift": FromConfig("shift", 1.0), **extra}
    return Scheduler(cls, tuple(overrides.items()), (TXT2IMG,), _FLOW_ONLY_TXT2IMG)


SD3 = {
    "FlowMatch Euler": _s("FlowMatchEulerDiscreteScheduler"),
    "FlowMatch Heun": _s("FlowMatchHeunDiscreteScheduler"),
    "DPM++ 2M": _flow_sigmas("DPMSolverMultistepScheduler"),
    "UniPC": _flow_sigmas("UniPCMultistepScheduler"),
}
# Flux's pipelines always pass custom sigmas and a resolution-dependent shift (mu): FlowMatch Heun takes
# neither, and diffusers' DPM solver takes mu only with dynamic shifting on (as Flux dev's own config has).
FLUX = {
    "FlowMatch Euler": SD3["FlowMatch Euler"],
    "DPM++ 2M": _flow_sigmas("DPMSolverMultistepScheduler", use_dynamic_shifting=True),
    "UniPC": SD3["UniPC"],
}
SCHEDULERS: dict[str, dict[str, Scheduler]] = {"sd1": EPSILON, "sdxl": EPSILON, "sd3": SD3, "flux": FLUX,
                                               "amused": {}}  # aMUSEd's masked-token scheduler only


def _union() -> tuple[str, ...]:
    names = [DEFAULT]
    for table in SCHEDULERS.values():
        names.extend(n for n in table if n not in names)
    return tuple(names)


CHOICES = _union()  # the node's combo: every name any family takes


def check_name(name: str) -> str:
    if name not in CHOICES:
        raise SpecError(f"scheduler {name!r} is unknown; choose one of: {', '.join(CHOICES)}")
    return name


def fitting(family: Family, mode: str = TXT2IMG) -> tuple[str, ...]:
    """The scheduler names that run on ``family`` in ``mode``."""
    return (DEFAULT, *(n for n, s in SCHEDULERS[family.key].items() if mode in s.modes))


def check_fits(family: Family, name: str, mode: str) -> None:
    """SpecError unless scheduler ``name`` runs on ``family`` in ``mode``; names the ones that do."""
    check_name(name)
    entry = SCHEDULERS[family.key].get(name)
    if name == DEFAULT or (entry is not None and mode in entry.modes):
        return
    if entry is None:
        raise SpecError(f"scheduler {name!r} does not fit {family.title} pipelines; "
                        f"the ones that do: {', '.join(fitting(family))}")
    raise SpecError(f"scheduler {name!r} runs {family.title} {', '.join(entry.modes)} only ({entry.note}); "
                    f"for {mode} choose one of: {', '.join(fitting(family, mode))}")


def build(family: Family, name: str, base, seed: int):
    """A new scheduler for one run, from the pipeline's scheduler ``base``; None for the model default."""
    if name == DEFAULT:
        return None
    import diffusers

    entry = SCHEDULERS[family.key][name]
    try:
        return getattr(diffusers, entry.cls).from_config(base.config, **entry.config(dict(base.config), seed))
    except ImportError as exc:  # diffusers' placeholder classes when scipy / torchsde are missing
        raise SpecError(f"scheduler {name!r} needs a package that is not installed: {exc}") from None

