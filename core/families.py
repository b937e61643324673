"""Pipeline families: which components a family has and how LoRA files name them.

Family specifics live in this table, never in if-chains elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import PipelineLoadError

MODEL_GROUP = "model"  # strength_model: the denoiser
CLIP_GROUP = "clip"  # strength_clip: every text encoder


@dataclass(frozen=True)
class Family:
    key: str
    title: str
    pipeline_classes: tuple[str, ...]
    denoiser: str
    text_encoders: tuple[str, ...]
    # kohya / A1111 key prefix -> component
    kohya_prefixes: tuple[tuple[str, str], ...]
    default_size: int
    default_steps: int
    default_cfg: float

    def aliases_for(self, component: str):
        """A function giving extra names for a module of ``component`` (None: no extra names)."""
        return None

    @property
    def components(self) -> tuple[str, ...]:
        return (self.denoiser, *self.text_encoders)

    def group_of(self, component: str) -> str:
        return MODEL_GROUP if component == self.denoiser else CLIP_GROUP


SD1 = Family(
    key="sd1",
    title="Stable Diffusion 1.x/2.x",
    pipeline_classes=("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"),
    denoiser="unet",
    text_encoders=("text_encoder",),
    kohya_prefixes=(("lora_unet_", "unet"), ("lora_te_", "text_encoder"), ("lora_te1_", "text_encoder")),
    default_size=512,
    default_steps=20,
    default_cfg=7.0,
)

FAMILIES: dict[str, Family] = {f.key: f for f in (SD1,)}
_BY_CLASS = {cls: f for f in FAMILIES.values() for cls in f.pipeline_classes}


def family_for_class(class_name: str) -> Family:
    """The family of a diffusers pipeline class name, or a PipelineLoadError naming it."""
    try:
        return _BY_CLASS[class_name]
    except KeyError:
        supported = ", ".join(sorted(_BY_CLASS))
        raise PipelineLoadError(
            f"pipeline class {class_name!r} is not supported by LoRA Deck. Supported: {supported}"
        ) from None


def family_of(pipe) -> Family:
    return family_for_class(type(pipe).__name__)
