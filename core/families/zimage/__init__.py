"""Z-Image (Tongyi-MAI Z-Image Turbo / Base): a single-stream DiT with noise and context refiners, a Qwen3 text
encoder and the FLUX.1 VAE."""

from dataclasses import replace

from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import single_file, tiny
from .generate import call
from .names import aliases, zimage_names
from .schedulers import SCHEDULERS

# Block weights: the three block lists as ComfyUI, musubi-tuner, ai-toolkit and diffusion-pipe name them (a range
# never spans two lists: layers.0 is not noise_refiner.0).
BLOCKS = replace(RANGES, help="<blocks>.N-M over layers (0-29 on Z-Image), noise_refiner (0-1), context_refiner "
                              "(0-1), e.g. layers.0-14=0.5")
_MARK = "Z-Image"

# diffusers loads Z-Image LoRAs into the transformer only (ZImageLoraLoaderMixin); LoRA Deck also applies a part
# for the Qwen3 text encoder when a file has one (lora_te_/lora_te1_ keys, text_encoder.<module>, ComfyUI's
# text_encoders.qwen3_4b.transformer.model.<module>), with peft, at strength_clip.
FAMILY = Family(
    key="zimage", title="Z-Image", pipeline_classes=("ZImagePipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"), ("lora_te_", "text_encoder"),
                                                     ("lora_te1_", "text_encoder")),
    tiny=tiny.build, builtin="tiny-zimage", blocks=BLOCKS, schedulers=SCHEDULERS, call=call,
    single_files=single_file.ARCHS, original_names=zimage_names, aliases=aliases,
    other_variants=single_file.OTHER_VARIANTS,
    lora_markers=(("noise_refiner", _MARK), ("context_refiner", _MARK), ("feed_forward.w", _MARK),
                  ("feed_forward_w", _MARK), ("attention.to_", _MARK), ("attention_to_", _MARK),
                  ("attention.qkv", _MARK), ("attention_qkv", _MARK)),
    encoder_markers=(("qwen3_4b", "Z-Image or another model with a Qwen3-4B text encoder"),),
    img2img="ZImageImg2ImgPipeline", inpaint="ZImageInpaintPipeline", patch=2, denoise_steps="rest",
    # the patch and caption embedders run on the batch's tokens concatenated (ZImageTransformer2DModel.forward)
    packed_inputs=("all_x_embedder.", "cap_embedder.", "siglip_embedder."),
)
