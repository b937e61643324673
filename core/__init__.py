"""LoRA Deck's adapter core: declarative LoRA stacks reconciled onto diffusers pipelines.

Imports torch, diffusers, peft and safetensors only; never ComfyUI, never the node classes.
"""

from .api import Deck, PipelineHandle, open_pipeline
from .errors import (
    FuseError,
    IncompatibleLoraError,
    LoraDeckError,
    LoraFileError,
    NonFiniteOutputError,
    PipelineLoadError,
    SpecError,
)
from .generate import generate
from .grid import GridResult, run_grid
from .owner import PipelineOwner
from .runtime import Folders, Runtime, default_runtime
from .settings import Settings
from .specs import AdapterSpec, GenerateParams, StackSpec

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
