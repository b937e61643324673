"""LoRA Deck's adapter core: declarative LoRA stacks reconciled onto diffusers pipelines.

Imports torch, diffusers, peft and safetensors only; never ComfyUI, never the node classes. The error
types are light and imported here; everything else on first access (PEP 562), so importing one light
module (``loradeck.core.errors``, ``loradeck.core.families``: the command line) does not load torch.
"""

import importlib

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
    "AdapterSpec": ".stacks.specs",
    "Deck": ".api",
    "Folders": ".runtime",
    "GenerateParams": ".stacks.specs",
    "GridResult": ".generation.grid",
    "PipelineHandle": ".api",
    "PipelineOwner": ".adapters.owner",
    "Runtime": ".runtime",
    "Settings": ".settings",
    "StackSpec": ".stacks.specs",
    "default_runtime": ".runtime",
    "generate": ".generation.generate",
    "open_pipeline": ".api",
    "run_grid": ".generation.grid",
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

