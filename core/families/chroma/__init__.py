"""Chroma (lodestones' Chroma1-HD / Base / Flash): FLUX.1 schnell's double/single-stream transformer with its
modulation layers pruned and an approximator (``distilled_guidance_layer``) computing every block's
modulation, one T5-XXL text encoder (as ``text_encoder``: no CLIP), real classifier-free guidance with a
negative prompt."""

from ...generation.calls import diffusers_call
from ...models.family import Family
from . import single_file, tiny
from .blocks import BLOCKS
from .fixes import fix
from .names import chroma_names
from .schedulers import SCHEDULERS

# sd-scripts names Chroma's T5 lora_te3_ (as Flux's); OneTrainer lora_te_ (and its transformer lora_transformer_,
# on diffusers names); trainers that number Flux's T5 second write lora_te2_. SimpleTuner's LyCORIS files prefix
# the transformer lycoris_ (a prefix every family knows).
FAMILY = Family(
    key="chroma", title="Chroma", pipeline_classes=("ChromaPipeline",), denoiser="transformer",
    text_encoders=("text_encoder",),
    kohya_prefixes=(("lora_unet_", "transformer"), ("lora_transformer_", "transformer"),
                    ("lora_te_", "text_encoder"), ("lora_te2_", "text_encoder"), ("lora_te3_", "text_encoder")),
    tiny=tiny.build, builtin="tiny-chroma", blocks=BLOCKS, schedulers=SCHEDULERS, call=diffusers_call,
    single_files=single_file.ARCHS, original_names=chroma_names,
    # its block names are Flux's; only the approximator is its own (Flux's markers come after these)
    lora_markers=(("distilled_guidance_layer", "Chroma"),),
    # Flux LoRAs have its block names and shapes (Chroma is FLUX.1 schnell, pruned and retrained): one whose
    # metadata says Flux is refused here, as Flux refuses one whose metadata says Chroma
    lookalikes=("Flux",), other_variants=single_file.OTHER_VARIANTS, fix=fix,
    img2img="ChromaImg2ImgPipeline", inpaint="ChromaInpaintPipeline", patch=2, denoise_steps="rest",
)
