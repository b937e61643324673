"""Pipeline families: which components a family has, how LoRA files name them, how it generates.

Family specifics live in this table, never in if-chains elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import PipelineLoadError

# what Generate does: no image, an image (+ denoise), an image and a mask
TXT2IMG, IMG2IMG, INPAINT = "text-to-image", "img2img", "inpainting"
MODES = (TXT2IMG, IMG2IMG, INPAINT)

MODEL_GROUP = "model"  # strength_model: the denoiser
CLIP_GROUP = "clip"  # strength_clip: every text encoder

# A1111 / LoRA Block Weight vectors: block ids in order, per vector length.
LBW_SD1 = {
    17: ("BASE", "IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "M00",
         "OUT03", "OUT04", "OUT05", "OUT06", "OUT07", "OUT08", "OUT09", "OUT10", "OUT11"),
    26: ("BASE", *(f"IN{i:02d}" for i in range(12)), "M00", *(f"OUT{i:02d}" for i in range(12))),
}
LBW_SDXL = {
    12: ("BASE", "IN04", "IN05", "IN07", "IN08", "M00", "OUT00", "OUT01", "OUT02", "OUT03", "OUT04", "OUT05"),
    20: ("BASE", *(f"IN{i:02d}" for i in range(9)), "M00", *(f"OUT{i:02d}" for i in range(9))),
}


@dataclass(frozen=True)
class Family:
    key: str
    title: str
    pipeline_classes: tuple[str, ...]
    denoiser: str
    text_encoders: tuple[str, ...]
    # kohya / A1111 key prefix -> component
    kohya_prefixes: tuple[tuple[str, str], ...]
    block_scheme: str  # how block weights name blocks: "unet" (down/mid/up, A1111 vectors) or "ranges"
    lbw: dict = field(default_factory=dict)
    builtin: str = ""  # name of the tiny built-in model
    original_names: str = ""  # the denoiser's original (BFL/SAI) module names: a key of formats.original_names.BUILDERS
    call: str = "diffusers"  # how Generate calls the pipeline (see generate.py)
    img2img: str = ""  # diffusers' image-to-image pipeline class of the family
    inpaint: str = ""  # diffusers' inpainting pipeline class of the family
    # pixels per latent cell along one side = the VAE's scale factor x this: an int, or the name of the
    # denoiser config field holding it (SD3 patchifies latents, Flux packs 2x2 latents into one token)
    patch: int | str = 1
    # how many steps diffusers' img2img runs for steps s and denoise d: "floor" int(s*d) (SD, SDXL, aMUSEd),
    # "rest" s - int(s - s*d) (SD3, Flux)
    denoise_steps: str = "floor"

    def aliases_for(self, component: str, model):
        """A function giving extra names for a module of ``component`` (None: no extra names)."""
        if not (self.block_scheme == "unet" and component == self.denoiser):
            return None
        from .unet_names import sgm_name

        layers = int(getattr(model.config, "layers_per_block", 2))
        with_attention = {n.split(".")[1] for n, _ in model.named_modules()
                          if n.startswith("up_blocks.") and ".attentions." in n}

        def aliases(name: str):
            index = name.split(".")[1] if name.startswith("up_blocks.") else None
            sgm = sgm_name(name, layers, 2 if index in with_attention else 1)
            return (sgm,) if sgm else ()

        return aliases

    def variant(self, mode: str) -> str:
        """The diffusers pipeline class name for one of MODES."""
        return {TXT2IMG: self.pipeline_classes[0], IMG2IMG: self.img2img, INPAINT: self.inpaint}[mode]

    @property
    def classes(self) -> tuple[str, ...]:
        """Every diffusers pipeline class of the family (text-to-image ones first)."""
        return (*self.pipeline_classes, self.img2img, self.inpaint)

    def pixel_multiple(self, pipe) -> int:
        """Image sides must be multiples of this (8 on SD/SDXL, 16 on SD3 and Flux)."""
        patch = self.patch
        if isinstance(patch, str):
            patch = getattr(getattr(pipe, self.denoiser).config, patch, 1)
        return int(getattr(pipe, "vae_scale_factor", 8)) * int(patch)

    @property
    def components(self) -> tuple[str, ...]:
        return (self.denoiser, *self.text_encoders)

    def group_of(self, component: str) -> str:
        return MODEL_GROUP if component == self.denoiser else CLIP_GROUP


SD1 = Family("sd1", "Stable Diffusion 1.x/2.x", ("StableDiffusionPipeline",), "unet", ("text_encoder",),
             (("lora_unet_", "unet"), ("lora_te_", "text_encoder"), ("lora_te1_", "text_encoder")),
             block_scheme="unet", lbw=LBW_SD1, builtin="tiny-sd",
             img2img="StableDiffusionImg2ImgPipeline", inpaint="StableDiffusionInpaintPipeline")
SDXL = Family("sdxl", "Stable Diffusion XL", ("StableDiffusionXLPipeline",), "unet",
              ("text_encoder", "text_encoder_2"),
              (("lora_unet_", "unet"), ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2")),
              block_scheme="unet", lbw=LBW_SDXL, builtin="tiny-sdxl",
              img2img="StableDiffusionXLImg2ImgPipeline", inpaint="StableDiffusionXLInpaintPipeline")
SD3 = Family("sd3", "Stable Diffusion 3", ("StableDiffusion3Pipeline",), "transformer",
             ("text_encoder", "text_encoder_2", "text_encoder_3"),
             (("lora_unet_", "transformer"), ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2"),
              ("lora_te3_", "text_encoder_3")),
             block_scheme="ranges", builtin="tiny-sd3", original_names="sd3",
             img2img="StableDiffusion3Img2ImgPipeline", inpaint="StableDiffusion3InpaintPipeline", patch="patch_size",
             denoise_steps="rest")
# sd-scripts names Flux's T5 lora_te3_ ("ComfyUI compatible"); some trainers write lora_te2_.
FLUX = Family("flux", "Flux", ("FluxPipeline",), "transformer", ("text_encoder", "text_encoder_2"),
              (("lora_unet_", "transformer"), ("lora_te1_", "text_encoder"), ("lora_te_", "text_encoder"),
               ("lora_te2_", "text_encoder_2"), ("lora_te3_", "text_encoder_2")),
              block_scheme="ranges", builtin="tiny-flux", call="flux", original_names="flux",
              img2img="FluxImg2ImgPipeline", inpaint="FluxInpaintPipeline", patch=2, denoise_steps="rest")
AMUSED = Family("amused", "aMUSEd", ("AmusedPipeline",), "transformer", ("text_encoder",),
                (("lora_unet_", "transformer"), ("lora_te_", "text_encoder")), block_scheme="ranges",
                builtin="tiny-amused", call="amused",
                img2img="AmusedImg2ImgPipeline", inpaint="AmusedInpaintPipeline")

FAMILIES: dict[str, Family] = {f.key: f for f in (SD1, SDXL, SD3, FLUX, AMUSED)}
_BY_CLASS = {cls: f for f in FAMILIES.values() for cls in f.classes}


def family_for_class(class_name: str) -> Family:
    """The family of a diffusers pipeline class name, or a PipelineLoadError naming it."""
    try:
        return _BY_CLASS[class_name]
    except KeyError:
        supported = ", ".join(f"{f.title} ({', '.join(f.classes)})" for f in FAMILIES.values())
        raise PipelineLoadError(
            f"{class_name!r} pipelines are not supported by LoRA Deck. Supported families: {supported}"
        ) from None


def family_of(pipe) -> Family:
    return family_for_class(type(pipe).__name__)
