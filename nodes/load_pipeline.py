from __future__ import annotations

from ..core.api import open_pipeline
from ..core.models.pipelines import DTYPE_CHOICES
from . import host
from .common import CATEGORY, PIPELINE, node_id


class LoadPipeline:
    NODE_ID = node_id("LoadPipeline")
    DISPLAY_NAME = "Load Diffusers Pipeline"
    DESCRIPTION = ("Loads a diffusers model folder (models/diffusers), a single-file checkpoint (models/checkpoints: "
                   "SD 1.x, SD 2.x, SDXL, SD3/3.5, FLUX.1, Chroma, Z-Image Turbo) or a built-in tiny model, offline. "
                   "A checkpoint without its text encoders (Flux, Chroma, SD3, Z-Image) takes them from "
                   "models/text_encoders or models/clip (clip_l, clip_g, t5xxl, qwen_3_4b), a missing VAE from "
                   "models/vae; tokenizers come from ComfyUI's own files. Each LoRA node after it adds to an "
                   "immutable stack; nothing is changed until Generate.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE,)
    RETURN_NAMES = ("pipeline",)
    OUTPUT_TOOLTIPS = ("The pipeline with an empty LoRA stack.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (host.diffusers_models(), {
                "tooltip": "A diffusers folder (with model_index.json) under models/diffusers, a .safetensors "
                           "checkpoint under models/checkpoints (SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1; text encoders "
                           "it lacks are taken from models/text_encoders or models/clip, a missing VAE from "
                           "models/vae), or a built-in tiny model for trying things out."}),
            "dtype": (list(DTYPE_CHOICES), {
                "default": "auto",
                "tooltip": "Weight precision. auto = float16 on a GPU, float32 on the CPU."}),
        }}

    def load(self, model_name: str, dtype: str):
        return (open_pipeline(host.model_path(model_name), dtype, host.diffusers_folders(), host.runtime(),
                              local_files=host.single_file_sources()),)
