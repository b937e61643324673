"""Sana Sprint: Sana's transformer distilled for one to four steps (``SanaTransformer2DModel`` with an embedded
guidance scale and QK norm) and Sana's Gemma 2 encoder and autoencoder, sampled by the sCM scheduler.

diffusers loads its LoRAs with Sana's loader (the transformer only); its blocks are Sana's, so Sana files and
Sana Sprint files fit each other's modules (on the real models too: 0.6B and 1.6B have Sana's widths). It has an
img2img class and no inpainting one. No single files, no original-name table; its own scheduler only.
"""

from ...models.family import Family
from ...stacks.block_weights import RANGES
from ..sana import FAMILY as SANA
from . import tiny
from .generate import call

FAMILY = Family(
    key="sanasprint", title="Sana Sprint", pipeline_classes=("SanaSprintPipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-sanasprint", blocks=RANGES, schedulers={}, call=call,
    single_files=(), original_names=None,
    # Sana's layers name Sana (registered first); the guidance embedder is Sprint's own (Flux's is time_text_embed)
    lora_markers=(*SANA.lora_markers, ("time_embed.guidance_embedder", "Sana Sprint"),
                  ("time_embed_guidance_embedder", "Sana Sprint")),
    img2img="SanaSprintImg2ImgPipeline", patch="patch_size", denoise_steps="rest",
)
