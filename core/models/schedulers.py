"""The schedulers Generate offers, by the names users know: the machinery and the shared tables.

Each is built from the pipeline's own scheduler config (``from_config``: nothing is downloaded; the
model's beta schedule, prediction type and shift carry over) plus a few overrides, as a new object
for one run: the owner's pipeline keeps its scheduler. Which names fit which family (and, where
diffusers' pipelines limit it, which generation mode) is data: each family's ``schedulers`` table, most of
them one of the tables here (EPSILON for UNets, FLOW_MATCH for flow-matching transformers); the union of
every family's names is ``core.families.SCHEDULER_CHOICES``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError
from .family import MODES, TXT2IMG, Family

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


def entry(cls: str, **overrides) -> Scheduler:
    """A table entry: diffusers' scheduler class ``cls`` with fixed ``overrides``."""
    return Scheduler(cls, tuple(overrides.items()))


KARRAS = {"use_karras_sigmas": True}
# Epsilon / v-prediction UNets (SD 1.x/2.x, SDXL): prediction_type comes from the model's config.
EPSILON = {
    "Euler": entry("EulerDiscreteScheduler"),
    "Euler a": entry("EulerAncestralDiscreteScheduler"),
    "Heun": entry("HeunDiscreteScheduler"),
    "DPM2": entry("KDPM2DiscreteScheduler"),
    "DPM2 a": entry("KDPM2AncestralDiscreteScheduler"),
    "LMS": entry("LMSDiscreteScheduler"),
    "LMS Karras": entry("LMSDiscreteScheduler", **KARRAS),
    "DPM++ 2M": entry("DPMSolverMultistepScheduler"),
    "DPM++ 2M Karras": entry("DPMSolverMultistepScheduler", **KARRAS),
    "DPM++ 2M SDE": entry("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++"),
    "DPM++ 2M SDE Karras": entry("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++", **KARRAS),
    # A1111's "DPM++ SDE" (k-diffusion sample_dpmpp_sde): torchsde's Brownian tree, seeded by the run's seed
    "DPM++ SDE": entry("DPMSolverSDEScheduler", noise_sampler_seed=SEED),
    "DPM++ SDE Karras": entry("DPMSolverSDEScheduler", noise_sampler_seed=SEED, **KARRAS),
    "DDIM": entry("DDIMScheduler"),
    "DDPM": entry("DDPMScheduler"),
    # A1111's PLMS; SD checkpoints ship it with skip_prk_steps (Runge-Kutta warm-up steps need many steps)
    "PNDM": entry("PNDMScheduler", skip_prk_steps=True),
    "UniPC": entry("UniPCMultistepScheduler"),
    "DEIS": entry("DEISMultistepScheduler"),
    "LCM": entry("LCMScheduler"),
}

FLOW_ONLY_TXT2IMG = ("diffusers' flow-matching img2img/inpainting pipelines (SD3, Flux, ...) noise the input image "
                     "with scheduler.scale_noise, which only the FlowMatch schedulers have")


def flow_sigmas(cls: str, **extra) -> Scheduler:
    """A multistep solver on a flow-matching model: flow sigmas and the model's own shift (text-to-image only)."""
    overrides = {"use_flow_sigmas": True, "prediction_type": "flow_prediction",
                 "flow_shift": FromConfig("shift", 1.0), **extra}
    return Scheduler(cls, tuple(overrides.items()), (TXT2IMG,), FLOW_ONLY_TXT2IMG)


# Flow-matching transformers (SD3 and its kin); families whose pipelines pass their own sigmas pick from these.
FLOW_MATCH = {
    "FlowMatch Euler": entry("FlowMatchEulerDiscreteScheduler"),
    "FlowMatch Heun": entry("FlowMatchHeunDiscreteScheduler"),
    "DPM++ 2M": flow_sigmas("DPMSolverMultistepScheduler"),
    "UniPC": flow_sigmas("UniPCMultistepScheduler"),
}


def fitting(family: Family, mode: str = TXT2IMG) -> tuple[str, ...]:
    """The scheduler names that run on ``family`` in ``mode``."""
    return (DEFAULT, *(n for n, s in family.schedulers.items() if mode in s.modes))


def check_fits(family: Family, name: str, mode: str) -> None:
    """SpecError unless scheduler ``name`` runs on ``family`` in ``mode``; names the ones that do (an unknown
    name was refused when the run's parameters were made)."""
    found = family.schedulers.get(name)
    if name == DEFAULT or (found is not None and mode in found.modes):
        return
    if found is None:
        raise SpecError(f"scheduler {name!r} does not fit {family.title} pipelines; "
                        f"the ones that do: {', '.join(fitting(family))}")
    raise SpecError(f"scheduler {name!r} runs {family.title} {', '.join(found.modes)} only ({found.note}); "
                    f"for {mode} choose one of: {', '.join(fitting(family, mode))}")


def build(family: Family, name: str, base, seed: int):
    """A new scheduler for one run, from the pipeline's scheduler ``base``; None for the model default."""
    if name == DEFAULT:
        return None
    import diffusers

    chosen = family.schedulers[name]
    try:
        return getattr(diffusers, chosen.cls).from_config(base.config, **chosen.config(dict(base.config), seed))
    except ImportError as exc:  # diffusers' placeholder classes when scipy / torchsde are missing
        raise SpecError(f"scheduler {name!r} needs a package that is not installed: {exc}") from None

