"""Every pipeline family LoRA Deck knows, registered in one place.

A family is one folder here (``sd1/``, ``flux/``, ...) whose ``FAMILY`` row (``models.family.Family``) names
its pieces: its tiny built-in model, single-file rows and configs, schedulers, block-weight scheme, original
module names, generate call and the hints that recognise its LoRA files. Adding a family is adding its folder
and one line to ``_REGISTERED``; ``tests/test_family_pieces.py`` checks that each registered family provides
every piece. Importing this package loads neither torch nor diffusers.
"""

from __future__ import annotations

from ..errors import PipelineLoadError, SpecError
from ..models.family import Family
from ..models.schedulers import DEFAULT
from . import amused, chroma, flux, flux2, flux2dev, krea2, qwenimage, sd1, sd3, sdxl, zimage

_REGISTERED = (
    sd1.FAMILY,
    sdxl.FAMILY,
    sd3.FAMILY,
    # before Flux: a Chroma file has every key a FLUX.1 schnell file has (single files are matched in this order),
    # and Chroma's LoRA marker (its approximator) must be tried before Flux's shared block names
    chroma.FAMILY,
    # before Flux: FLUX.2 files share FLUX.1's block names, so FLUX.2's own key markers must be checked first, and
    # its single-file variants named before FLUX.1's (a FLUX.2 img_in has a FLUX.1 Fill's width)
    flux2.FAMILY,
    flux2dev.FAMILY,
    flux.FAMILY,
    amused.FAMILY,
    krea2.FAMILY,
    qwenimage.FAMILY,
    zimage.FAMILY,
)
# More built-in models of a registered family: rows that differ from it only in ``tiny`` and ``builtin``.
_MORE_BUILTINS = (qwenimage.EDIT_BUILTIN,)

FAMILIES: dict[str, Family] = {f.key: f for f in _REGISTERED}
_BY_CLASS = {cls: f for f in FAMILIES.values() for cls in f.classes}

BUILTIN_SUFFIX = " (built-in)"
BUILTINS = {f.builtin: f for f in (*FAMILIES.values(), *_MORE_BUILTINS)}
BUILTIN_NAMES = tuple(f"{name}{BUILTIN_SUFFIX}" for name in BUILTINS)

# Single files: every family's rows, in registration order (the first that matches a file wins), and the variants
# no family here loads (a family's own first, then those of models this pack has no family for).
SINGLE_FILE_ARCHS = tuple(arch for f in FAMILIES.values() for arch in f.single_files)


def _scheduler_choices() -> tuple[str, ...]:
    names = [DEFAULT]
    for family in FAMILIES.values():
        names.extend(n for n in family.schedulers if n not in names)
    return tuple(names)


SCHEDULER_CHOICES = _scheduler_choices()  # the nodes' combo: every name any family takes


def family_for_class(class_name: str) -> Family:
    """The family of a diffusers pipeline class name, or a PipelineLoadError naming it."""
    try:
        return _BY_CLASS[class_name]
    except KeyError:
        supported = ", ".join(f"{f.title} ({', '.join(f.classes)})" for f in FAMILIES.values())
        raise PipelineLoadError(
            f"{class_name!r} pipelines are not supported by LoRA Deck. Supported families: {supported}"
        ) from None


def family_of(pipe) -> Family:
    return family_for_class(type(pipe).__name__)


def tiny_pipeline(key: str = "sd1", seed: int = 0, **options):
    """A family's built-in tiny pipeline (``key``: a FAMILIES key, e.g. "sd1", "flux"), made from its seeded
    config with in-memory tokenizers: nothing is downloaded."""
    return FAMILIES[key].tiny(seed, **options)


def check_scheduler_name(name: str) -> str:
    """``name`` if some family takes that scheduler, else a SpecError listing them."""
    if name not in SCHEDULER_CHOICES:
        raise SpecError(f"scheduler {name!r} is unknown; choose one of: {', '.join(SCHEDULER_CHOICES)}")
    return name
