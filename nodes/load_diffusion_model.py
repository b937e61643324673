from __future__ import annotations

from ..core.api import open_pipeline
from ..core.models.pipelines import DTYPE_CHOICES
from . import host
from .common import CATEGORY, PIPELINE, node_id

AUTO = "auto"
_ENCODER_TIP = ("A text encoder file from models/text_encoders (or models/clip), used for whichever of the model's "
                "text encoders its keys and shapes fit (fp16/bf16, fp8 or scaled fp8). auto: found there by shape.")


class LoadDiffusionModel:
    NODE_ID = node_id("LoadDiffusionModel")
    DISPLAY_NAME = "Load Diffusion Model (split files)"
    DESCRIPTION = ("Loads a model kept as ComfyUI keeps it in separate files: the denoiser from "
                   "models/diffusion_models (or models/unet) as .safetensors in fp16/bf16, fp8 or ComfyUI's scaled "
                   "fp8, or as a GGUF file; its text encoders from models/text_encoders (or models/clip) and its VAE "
                   "from models/vae (Wan 2.1 image-to-video: its CLIP vision encoder from models/clip_vision), found "
                   "by their keys and shapes or picked here; a two-expert model (Wan 2.2 A14B) takes its other "
                   "expert from beside it or picked. fp8 and GGUF weights stay "
                   "quantized in memory and LoRAs run unfused on top of them. Any depth and width of a known "
                   "architecture loads: its config is read off the weights, and what they cannot tell comes from a "
                   "diffusers folder of the model in models/diffusers, else from the pack's own configs.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE,)
    RETURN_NAMES = ("pipeline",)
    OUTPUT_TOOLTIPS = ("The pipeline with an empty LoRA stack.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        encoders = [AUTO, *host.text_encoder_files()]
        return {"required": {
            "unet_name": (host.diffusion_models(), {
                "tooltip": "The denoiser file: models/diffusion_models or models/unet, .safetensors (fp16, bf16, fp8, "
                           "ComfyUI's scaled fp8) or .gguf (ComfyUI-GGUF)."}),
            "dtype": (list(DTYPE_CHOICES), {
                "default": "auto",
                "tooltip": "Compute precision (and storage of everything not quantized in the file). auto = float16 "
                           "on a GPU, float32 on the CPU."}),
        }, "optional": {
            "text_encoder_1": (encoders, {"default": AUTO, "tooltip": _ENCODER_TIP}),
            "text_encoder_2": (encoders, {"default": AUTO, "tooltip": _ENCODER_TIP}),
            "text_encoder_3": (encoders, {"default": AUTO, "tooltip": _ENCODER_TIP}),
            "vae": ([AUTO, *host.vae_files()], {
                "default": AUTO, "tooltip": "The VAE file from models/vae. auto: the one whose latent channels fit."}),
            "second_denoiser": ([AUTO, *host.diffusion_models()], {
                "default": AUTO,
                "tooltip": "Models with two denoisers (Wan 2.2 A14B: a high-noise and a low-noise expert): the other "
                           "one's file. auto: found beside unet_name by ComfyUI's usual names (high_noise <-> "
                           "low_noise); picked here, a file named neither is the low-noise expert."}),
        }}

    def load(self, unet_name: str, dtype: str, text_encoder_1: str = AUTO, text_encoder_2: str = AUTO,
             text_encoder_3: str = AUTO, vae: str = AUTO, second_denoiser: str = AUTO):
        encoders = tuple(host.part_path(("text_encoders", "clip"), name, "text encoder")
                         for name in (text_encoder_1, text_encoder_2, text_encoder_3) if name and name != AUTO)
        vae_path = host.part_path(("vae",), vae, "VAE") if vae and vae != AUTO else ""
        expert = host.part_path(("diffusion_models", "unet"), second_denoiser, "second denoiser") \
            if second_denoiser and second_denoiser != AUTO else ""
        path = host.part_path(("diffusion_models", "unet"), unet_name, "diffusion model")
        return (open_pipeline(path, dtype, host.diffusers_folders(), host.runtime(),
                              local_files=host.single_file_sources(), text_encoders=encoders, vae=vae_path,
                              expert=expert),)
