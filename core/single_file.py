"""Single-file checkpoints (A1111/ComfyUI ``.safetensors``), loaded through diffusers offline.

diffusers needs the model's config files to read a single file; offline, they must come from a
local diffusers folder of the same family. Without one, the error says exactly that.
"""

from __future__ import annotations

import json
import os

import torch

from .errors import PipelineLoadError
from .families import FAMILIES, Family

# diffusers' inferred model type -> our family
MODEL_TYPES = {"v1": "sd1", "v2": "sd1", "xl_base": "sdxl", "playground-v2-5": "sdxl", "sd3": "sd3",
               "sd35_medium": "sd3", "sd35_large": "sd3", "flux-dev": "flux", "flux-schnell": "flux"}
MODEL_KEY_PREFIXES = ("model.diffusion_model.", "double_blocks.", "joint_blocks.", "single_blocks.")


def _family_of(path: str, checkpoint) -> Family:
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    if not any(k.startswith(MODEL_KEY_PREFIXES) for k in checkpoint):
        raise PipelineLoadError(f"{path!r} is not a model checkpoint (no diffusion-model weights); "
                                "if it is a LoRA, put it in models/loras and use Load LoRA")
    model_type = infer_diffusers_model_type(checkpoint)
    if model_type not in MODEL_TYPES:
        raise PipelineLoadError(f"{path!r} is a {model_type!r} checkpoint, which LoRA Deck does not support; "
                                f"supported: {', '.join(f.title for f in FAMILIES.values())}")
    return FAMILIES[MODEL_TYPES[model_type]]


def config_folder(family: Family, folders: list[str]) -> str | None:
    """The first local diffusers folder whose pipeline belongs to ``family``."""
    for folder in folders:
        try:
            with open(os.path.join(folder, "model_index.json"), encoding="utf-8") as f:
                if json.load(f).get("_class_name") in family.pipeline_classes:
                    return folder
        except (OSError, json.JSONDecodeError):
            continue
    return None


def load_single_file(path: str, dtype: torch.dtype, device: torch.device, folders: list[str]):
    import diffusers
    from diffusers.loaders.single_file_utils import load_single_file_checkpoint

    try:
        checkpoint = load_single_file_checkpoint(path, local_files_only=True)
    except Exception as exc:  # diffusers/safetensors raise several types for unreadable files
        raise PipelineLoadError(f"{path!r} cannot be read as a checkpoint ({exc})") from exc
    family = _family_of(path, checkpoint)
    config = config_folder(family, folders)
    if config is None:
        raise PipelineLoadError(
            f"{os.path.basename(path)!r} is a {family.title} checkpoint. diffusers needs that model's config "
            f"files to read a single file, and cannot download them offline: put a diffusers folder of a "
            f"{family.title} model (with model_index.json) in models/diffusers, or load the diffusers folder itself")
    cls = getattr(diffusers, family.pipeline_classes[0])
    try:
        pipe = cls.from_single_file(path, config=config, local_files_only=True, torch_dtype=dtype)
    except Exception as exc:
        raise PipelineLoadError(f"diffusers could not load {path!r} with the config of {config!r}: {exc}") from exc
    return pipe.to(device)
