"""LoRA Deck's adapter core: declarative LoRA stacks reconciled onto diffusers pipelines.

Imports torch, diffusers, peft and safetensors only; never ComfyUI.
"""

from .api import Deck, PipelineHandle, open_pipeline
from .errors import (
    FuseError,
    IncompatibleLoraError,
    LoraDeckError,
    LoraFileError,
    PipelineLoadError,
    SpecError,
)
from .files import FILE_CACHE
from .generate import generate
from .owner import PipelineOwner
from .pipelines import REGISTRY
from .specs import AdapterSpec, GenerateParams, StackSpec

__all__ = [
    "FILE_CACHE",
    "REGISTRY",
    "AdapterSpec",
    "Deck",
    "FuseError",
    "GenerateParams",
    "IncompatibleLoraError",
    "LoraDeckError",
    "LoraFileError",
    "PipelineHandle",
    "PipelineLoadError",
    "PipelineOwner",
    "SpecError",
    "StackSpec",
    "generate",
    "open_pipeline",
]
