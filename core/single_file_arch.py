"""Which architecture a single-file checkpoint is: a table of key markers and shape signatures.

Every known architecture has a folder of diffusers component configs in ``core/model_configs/<key>/``
(JSON only; sources in its README). Detection reads the safetensors header only: key names and shapes,
plus, for SD 2.x, one small tensor (ComfyUI's v-prediction test). First match in ``ARCHS`` wins.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

CONFIG_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_configs")
UNET_PREFIX = "model.diffusion_model."


@dataclass(frozen=True)
class Encoder:
    """A text-encoder slot: its pipeline component, what it is, and where all-in-one files keep it."""

    component: str  # "text_encoder_2"
    kind: str  # "clip_l" | "clip_h" | "clip_g" | "t5xxl" (see ENCODER_KINDS)
    prefixes: tuple[str, ...]  # key prefixes inside a checkpoint, in diffusers' single-file layout
    required: bool = True


@dataclass(frozen=True)
class Arch:
    key: str  # folder under core/model_configs
    title: str
    markers: tuple[tuple[str, tuple[int, ...] | None], ...]  # denoiser key -> shape (None: only present)
    encoders: tuple[Encoder, ...]
    absent: tuple[str, ...] = ()  # denoiser keys that must not be there
    rule: str = ""  # a name in RULES that must also hold
    tiny: bool = False  # the pack's built-in tiny models: tokenizers come from core/tiny.py

    @property
    def config_dir(self) -> str:
        return os.path.join(CONFIG_ROOT, self.key)


# What each encoder kind is, for messages and for finding separate files by name when shapes tie.
ENCODER_KINDS = {
    "clip_l": ("CLIP-L text encoder", "clip_l.safetensors", ("clip_l", "clip-l", "clipl", "vit-l", "vit_l")),
    "clip_h": ("OpenCLIP-H text encoder", "the SD 2.x text encoder", ("clip_h", "clip-h", "vit-h", "open_clip")),
    "clip_g": ("OpenCLIP-G text encoder", "clip_g.safetensors", ("clip_g", "clip-g", "bigg", "vit-g")),
    "t5xxl": ("T5-XXL text encoder", "t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors", ("t5",)),
}

_SD1_TE = (Encoder("text_encoder", "clip_l", ("cond_stage_model.transformer.",)),)
_SD2_TE = (Encoder("text_encoder", "clip_h", ("cond_stage_model.model.",)),)
_SDXL_TE = (Encoder("text_encoder", "clip_l", ("conditioner.embedders.0.transformer.",)),
            Encoder("text_encoder_2", "clip_g", ("conditioner.embedders.1.model.",)))
_CLIP_L = Encoder("text_encoder", "clip_l", ("text_encoders.clip_l.transformer.",))
_T5 = "text_encoders.t5xxl.transformer."
_SD3_TE = (_CLIP_L, Encoder("text_encoder_2", "clip_g", ("text_encoders.clip_g.transformer.",)),
           Encoder("text_encoder_3", "t5xxl", (_T5,), required=False))
_FLUX_TE = (_CLIP_L, Encoder("text_encoder_2", "t5xxl", (_T5,)))

_SD_ATTN = "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
_XL_ATTN = "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"
_MMDIT = "joint_blocks.0.x_block.attn.qkv.weight"
_MMDIT_X = "joint_blocks.0.x_block.attn2.qkv.weight"
_FLUX = "double_blocks.0.img_attn.qkv.weight"
_GUIDANCE = "guidance_in.in_layer.weight"

ARCHS: tuple[Arch, ...] = (
    Arch("flux-dev", "FLUX.1 dev", ((_FLUX, (9216, 3072)), ("img_in.weight", (3072, 64)), (_GUIDANCE, None)),
         _FLUX_TE),
    Arch("flux-schnell", "FLUX.1 schnell", ((_FLUX, (9216, 3072)), ("img_in.weight", (3072, 64))), _FLUX_TE,
         absent=(_GUIDANCE,)),
    Arch("tiny-flux", "tiny Flux (built-in)", ((_FLUX, (96, 32)), ("img_in.weight", (32, 4))), _FLUX_TE, tiny=True),
    Arch("sd35-large", "Stable Diffusion 3.5 Large", ((_MMDIT, (7296, 2432)),), _SD3_TE),
    Arch("sd35-medium", "Stable Diffusion 3.5 Medium",
         ((_MMDIT, (4608, 1536)), (_MMDIT_X, (4608, 1536)), ("pos_embed", (1, 147456, 1536))), _SD3_TE),
    Arch("sd3-medium", "Stable Diffusion 3 Medium", ((_MMDIT, (4608, 1536)), ("pos_embed", (1, 36864, 1536))),
         _SD3_TE, absent=(_MMDIT_X,)),
    Arch("tiny-sd3", "tiny SD3 (built-in)", ((_MMDIT, (96, 32)), ("pos_embed", (1, 9216, 32))), _SD3_TE, tiny=True),
    Arch("sdxl-base", "Stable Diffusion XL base",
         ((_XL_ATTN, (640, 2048)), ("label_emb.0.0.weight", (1280, 2816)), ("input_blocks.0.0.weight", (320, 4, 3, 3))),
         _SDXL_TE),
    Arch("tiny-sdxl", "tiny SDXL (built-in)",
         ((_XL_ATTN, (32, 64)), ("label_emb.0.0.weight", (64, 80)), ("input_blocks.0.0.weight", (16, 4, 3, 3))),
         _SDXL_TE, tiny=True),
    Arch("sd2-v", "Stable Diffusion 2.x (768, v-prediction)",
         ((_SD_ATTN, (320, 1024)), ("input_blocks.0.0.weight", (320, 4, 3, 3))), _SD2_TE, rule="v_prediction"),
    Arch("sd2-base", "Stable Diffusion 2.x (512, epsilon)",
         ((_SD_ATTN, (320, 1024)), ("input_blocks.0.0.weight", (320, 4, 3, 3))), _SD2_TE),
    Arch("sd15", "Stable Diffusion 1.x",
         ((_SD_ATTN, (320, 768)), ("input_blocks.0.0.weight", (320, 4, 3, 3))), _SD1_TE,
         absent=("label_emb.0.0.weight",)),
    Arch("tiny-sd", "tiny SD 1.x (built-in)", ((_SD_ATTN, (16, 32)), ("input_blocks.0.0.weight", (16, 4, 3, 3))),
         _SD1_TE, tiny=True),
)
BY_KEY = {a.key: a for a in ARCHS}

# Families diffusers knows but LoRA Deck does not load from single files: marker -> what it is.
OTHER_MARKERS = (
    ("input_blocks.0.0.weight", lambda s: len(s) == 4 and s[1] in (8, 9), "an inpainting / instruct-pix2pix UNet"),
    (_XL_ATTN, lambda s: s[-1] == 1280, "the SDXL refiner"),
    ("img_in.weight", lambda s: s[-1] in (128, 384), "a FLUX.1 Fill or Depth model"),
    ("single_stream_modulation.lin.weight", None, "a FLUX.2 model"),
    ("distilled_guidance_layer.in_proj.bias", None, "a Chroma model"),
    ("control_model.time_embed.0.weight", None, "a ControlNet"),
)


@dataclass(frozen=True)
class Header:
    """What detection needs from a file: its keys with shapes and dtypes, read from the header only."""

    path: str
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    metadata: dict[str, str]
    read_tensor: Callable[[str], object]  # key -> torch.Tensor, read on demand

    @property
    def denoiser_prefix(self) -> str:
        # LDM/SGM/SAI/ComfyUI files prefix the denoiser; BFL transformer-only files do not
        return UNET_PREFIX if any(k.startswith(UNET_PREFIX) for k in self.shapes) else ""

    def denoiser_shape(self, key: str) -> tuple[int, ...] | None:
        return self.shapes.get(self.denoiser_prefix + key)


def _v_prediction(header: Header, arch: Arch) -> bool:
    """SD 2.x v-prediction: a ``v_pred`` key or an A1111 sidecar .yaml says so; else ComfyUI's test
    (supported_models.SD20.model_type): std of one norm bias > 0.09 means v-prediction."""
    if "v_pred" in header.shapes:
        return True
    sidecar = _sidecar_parameterization(header.path)
    if sidecar is not None:
        return sidecar == "v"
    key = header.denoiser_prefix + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
    if key not in header.shapes:
        return False
    bias = header.read_tensor(key).float()
    return bool(bias.std(unbiased=False) > 0.09)


def _sidecar_parameterization(path: str) -> str | None:
    """``model.params.parameterization`` of ``<checkpoint>.yaml`` beside the file (A1111's convention)."""
    yaml_path = os.path.splitext(path)[0] + ".yaml"
    if not os.path.isfile(yaml_path) or os.path.getsize(yaml_path) > 1 << 20:
        return None
    import yaml

    try:
        with open(yaml_path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        return str(data["model"]["params"].get("parameterization", "eps"))
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None


RULES: dict[str, Callable[[Header, Arch], bool]] = {"v_prediction": _v_prediction}


def matches(arch: Arch, header: Header) -> bool:
    for key, shape in arch.markers:
        found = header.denoiser_shape(key)
        if found is None or (shape is not None and tuple(found) != shape):
            return False
    if any(header.denoiser_shape(key) is not None for key in arch.absent):
        return False
    return not arch.rule or RULES[arch.rule](header, arch)


def detect(header: Header) -> Arch | None:
    """The first architecture in ``ARCHS`` whose markers the file has, or None."""
    return next((arch for arch in ARCHS if matches(arch, header)), None)


def describe_markers(header: Header) -> str:
    """The marker keys this file has (with shapes), for an error that says what was found."""
    keys = sorted({key for arch in ARCHS for key, _ in arch.markers})
    found = [f"{key} {list(header.denoiser_shape(key))}" for key in keys if header.denoiser_shape(key) is not None]
    return "; ".join(found) if found else "none of the known denoiser keys"


def other_family(header: Header) -> str | None:
    """A family diffusers knows but LoRA Deck does not load from single files, when its marker is there."""
    for key, test, what in OTHER_MARKERS:
        shape = header.denoiser_shape(key) or header.shapes.get(key)
        if shape is not None and (test is None or test(shape)):
            return what
    return None


def scheduler_overrides(header: Header) -> dict:
    """v-prediction / zero-terminal-SNR flags that ComfyUI and kohya write into some UNet checkpoints."""
    overrides = {}
    if "v_pred" in header.shapes:
        overrides["prediction_type"] = "v_prediction"
    if "ztsnr" in header.shapes:
        overrides["rescale_betas_zero_snr"] = True
    return overrides
