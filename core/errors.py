"""Exception types. Every message names the file or input, what was wrong and what to do."""

from __future__ import annotations


class LoraDeckError(Exception):
    """Base class of every error LoRA Deck raises on purpose."""


class SpecError(LoraDeckError, ValueError):
    """A node input or spec value is invalid (bad strength, unknown adapter name, bad weights line)."""


class LoraFileError(LoraDeckError):
    """A LoRA file cannot be read: missing, not safetensors, corrupt, too large, unknown layout."""

    def __init__(self, path: str, problem: str, advice: str):
        # a problem may end in a sentence of its own ("... suggest SDXL."): never print "..", keep an ellipsis
        problem = problem.rstrip()
        problem = problem if problem.endswith("...") else problem.rstrip(" .")
        self.path, self.problem, self.advice = str(path), problem, advice
        super().__init__(f"LoRA file {self.path!r}: {problem}. {advice}")


class IncompatibleLoraError(LoraFileError):
    """A readable LoRA file that does not fit the pipeline (wrong base model, no matching layers)."""


class PipelineLoadError(LoraDeckError):
    """A model folder cannot be loaded as a supported diffusers pipeline."""


class FuseError(LoraDeckError):
    """Fusing failed (non-finite result); the pipeline was restored to its state before the call."""


class NonFiniteOutputError(LoraDeckError):
    """A generated image came out NaN or infinite; the message names the adapters in the stack."""
