"""LoRA Deck's adapter core: declarative LoRA stacks reconciled onto diffusers pipelines.

Imports torch, diffusers, peft and safetensors only; never ComfyUI, never the node classes. The error
types are light and imported here; everything else on first access (PEP 562), so importing one light
module (``loradeck.core.errors``, ``loradeck.core.families``: the command line) does not load torch.
"""

import importlib
import sys
import types

from .errors import (
    FuseError,
    IncompatibleLoraError,
    LoraDeckError,
    LoraFileError,
    NonFiniteOutputError,
    PipelineLoadError,
    SpecError,
)

_LAZY = {  # exported name -> the submodule that defines it
    "AdapterSpec": ".specs",
    "Deck": ".api",
    "Folders": ".runtime",
    "GenerateParams": ".specs",
    "GridResult": ".grid",
    "PipelineHandle": ".api",
    "PipelineOwner": ".owner",
    "Runtime": ".runtime",
    "Settings": ".settings",
    "StackSpec": ".specs",
    "default_runtime": ".runtime",
    "generate": ".generate",
    "open_pipeline": ".api",
    "run_grid": ".grid",
}

__all__ = [
    "AdapterSpec",
    "Deck",
    "Folders",
    "FuseError",
    "GenerateParams",
    "GridResult",
    "IncompatibleLoraError",
    "LoraDeckError",
    "LoraFileError",
    "NonFiniteOutputError",
    "PipelineHandle",
    "PipelineLoadError",
    "PipelineOwner",
    "Runtime",
    "Settings",
    "SpecError",
    "StackSpec",
    "default_runtime",
    "generate",
    "open_pipeline",
    "run_grid",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)


def __dir__():
    return sorted({*globals(), *_LAZY})


class _Core(types.ModuleType):
    """Keeps ``loradeck.core.generate`` the exported function, as an eager ``from .generate import generate``
    made it: loading a submodule binds it to its package's attribute of the same name, which would shadow
    the lazy export (``from loradeck.core import generate`` would then give the module)."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == f".{name}":
            return  # the submodule stays in sys.modules; the name stays the export
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Core
