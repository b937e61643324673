"""Which architecture a single-file checkpoint is: rows of key markers and shape signatures.

Each family's folder lists the architectures it loads from single files (``Family.single_files``, in its
``single_file.py``), each with a folder of diffusers component configs in ``core/families/<key>/configs/<arch>/``
(JSON only; sources in its README). Detection reads the header only (safetensors, or GGUF's tensor infos): key
names and shapes, plus, where a row's ``rule`` needs it, one small tensor (SD 2.x: ComfyUI's v-prediction test).
The first row (in the registry's order, ``core.families.SINGLE_FILE_ARCHS``) that matches wins.

A row with a ``derive`` hook loads any size of its architecture: the hook works the denoiser's config out of the
weights' shapes (depth, widths, heads), the way ComfyUI's model detection does, and states what the shapes require
of the other parts (text-encoder widths, latent channels). When no row matches exactly, the nearest such row whose
marker keys are all there (shapes aside) gives the configs the shapes cannot tell (``nearest``; ``models.configs``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

UNET_PREFIX = "model.diffusion_model."


@dataclass(frozen=True)
class Encoder:
    """A text-encoder slot: its pipeline component, what it is, and where all-in-one files keep it."""

    component: str  # "text_encoder_2"
    kind: str  # "clip_l" | "clip_h" | "clip_g" | "t5xxl" | "umt5xxl" | "qwen3_4b" | "qwen3_8b" | "mistral3" |
    # "qwen25_vl_7b" | "qwen3_vl_4b" | "gemma2_2b" | ... (see ENCODER_KINDS)
    prefixes: tuple[str, ...]  # key prefixes inside a checkpoint, in diffusers' single-file layout
    required: bool = True
    # what to put in models/text_encoders when it is missing, where not the kind's usual file (ENCODER_KINDS): Sana
    # needs Gemma 2 2B IT, Lumina 2 the base model ComfyUI ships, and the two have the same keys and shapes
    file: str = ""


@dataclass(frozen=True)
class Arch:
    key: str  # its config folder: <configs>/<key>
    title: str
    markers: tuple[tuple[str, tuple[int, ...] | None], ...]  # denoiser key -> shape (None: only present)
    encoders: tuple[Encoder, ...]
    configs: str  # the folder of its family's config folders (core/families/<family>/configs)
    absent: tuple[str, ...] = ()  # denoiser keys that must not be there
    rule: Callable[[Header, Arch], bool] | None = None  # a test that must also hold
    tiny: bool = False  # the pack's built-in tiny models: tokenizers come from models/tiny_parts.py
    vae_file: str = "the model's VAE .safetensors"  # what to put in models/vae when the VAE is missing
    # words in a VAE file's name that make it win over another VAE of the same shapes (the SDXL VAE's over SD 1.5's)
    vae_hints: tuple[str, ...] = ()
    # (denoiser tensors, its diffusers config) -> what diffusers' single-file converter takes (None: as read)
    prepare: Callable[[dict, dict], dict] | None = None
    # denoiser shapes (no prefix) -> {component: {config key: (value, evidence)}}: the denoiser's values override
    # its config, the other components' are requirements their configs must meet (models/configs.py). Raises
    # ConfigMismatch for shapes no config of the diffusers class can take.
    derive: Callable[[dict], dict] | None = None
    # (the configs {component: config}, source(component, key) -> "the shipped FLUX.1 dev config"): raises
    # ConfigMismatch naming a value the weights cannot tell and the configs got wrong (RoPE axes vs head width)
    check: Callable[[dict, Callable[[str, str], str]], None] | None = None
    # component -> (cls, component, tensors, config_dir, dtype) -> model, for a component diffusers has no
    # single-file loader for (the FLUX.2 VAE); the others are built by models/build.py
    builders: dict[str, Callable] = field(default_factory=dict, hash=False, compare=False)
    # Pipelines with more than one denoiser file (Wan 2.2 A14B: the high-noise ``transformer`` and the low-noise
    # ``transformer_2``): the denoiser file's path -> {component: path} of every denoiser, by the usual file names
    # (the picked file is among them); None when the name does not tell
    experts: Callable[[str], dict[str, str] | None] | None = None
    paired: str = ""  # the key of the row to use when a second denoiser file is picked explicitly

    @property
    def config_dir(self) -> str:
        return os.path.join(self.configs, self.key)


# What each encoder kind is, for messages and for finding separate files by name when shapes tie.
ENCODER_KINDS = {
    "clip_l": ("CLIP-L text encoder", "clip_l.safetensors", ("clip_l", "clip-l", "clipl", "vit-l", "vit_l")),
    "clip_h": ("OpenCLIP-H text encoder", "the SD 2.x text encoder", ("clip_h", "clip-h", "vit-h", "open_clip")),
    "clip_g": ("OpenCLIP-G text encoder", "clip_g.safetensors", ("clip_g", "clip-g", "bigg", "vit-g")),
    "t5xxl": ("T5-XXL text encoder", "t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors", ("t5",)),
    "qwen3_4b": ("Qwen3-4B text encoder", "qwen_3_4b.safetensors", ("qwen_3_4b", "qwen3_4b", "qwen3", "qwen")),
    "qwen3_8b": ("Qwen3-8B text encoder", "qwen_3_8b.safetensors", ("qwen_3_8b", "qwen3_8b", "qwen3", "qwen")),
    "mistral3": ("Mistral Small 3 text encoder", "mistral_3_small_flux2_bf16.safetensors (or its fp8 file)",
                 ("mistral_3", "mistral3", "mistral")),
    "ministral3": ("Ministral 3 3B text encoder", "ministral-3-3b.safetensors", ("ministral",)),
    "umt5xxl": ("UMT5-XXL text encoder", "umt5_xxl_fp8_e4m3fn_scaled.safetensors (or umt5_xxl_fp16.safetensors)",
                ("umt5",)),
    "qwen25_vl_7b": ("Qwen2.5-VL-7B text encoder", "qwen_2.5_vl_7b.safetensors (or qwen_2.5_vl_7b_fp8_scaled"
                     ".safetensors)", ("qwen_2.5_vl", "qwen2.5_vl", "qwen25_vl", "qwen2_5_vl", "qwen")),
    "pile_t5xl": ("Pile-T5-XL text encoder (AuraFlow's UMT5)", "the Pile-T5-XL text encoder (ComfyUI's pile_t5xl "
                  "part of aura_flow_0.3.safetensors, saved alone)", ("pile_t5", "pile-t5", "t5xl", "pile")),
    "qwen3_vl_4b": ("Qwen3-VL-4B text encoder", "qwen_3_vl_4b.safetensors", ("qwen_3_vl", "qwen3_vl", "qwen3-vl",
                                                                             "qwen")),
    # HiDream-I1's: Long-CLIP L / G (248 positions) and Llama 3.1 8B Instruct
    "long_clip_l": ("Long-CLIP-L text encoder (248 positions)", "clip_l_hidream.safetensors",
                    ("clip_l", "clip-l", "long_clip", "longclip")),
    "long_clip_g": ("Long-CLIP-G text encoder (248 positions)", "clip_g_hidream.safetensors",
                    ("clip_g", "clip-g", "long_clip", "longclip")),
    "llama31_8b": ("Llama 3.1 8B text encoder", "llama_3.1_8b_instruct_fp8_scaled.safetensors",
                   ("llama_3.1", "llama3.1", "llama31", "llama")),
    "gemma2_2b": ("Gemma 2 2B text encoder", "gemma_2_2b_fp16.safetensors", ("gemma_2_2b", "gemma2_2b", "gemma")),
}

# ComfyUI's all-in-one files (SD3, Flux) keep each text encoder under text_encoders.<kind>.transformer.
CLIP_L = Encoder("text_encoder", "clip_l", ("text_encoders.clip_l.transformer.",))
T5_PREFIX = "text_encoders.t5xxl.transformer."

# Variants diffusers knows but LoRA Deck does not load from single files, of no family here: marker -> what.
# A family's own (an SDXL refiner, a FLUX.1 Fill) are in its row (``Family.other_variants``).
OTHER_MARKERS = (
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


class ConfigMismatch(ValueError):
    """The weights need a config value the configs at hand do not have (the message names it and its source)."""


def check_rope_axes(configs: dict, source) -> None:
    """An ``Arch.check`` piece: RoPE's axes are not in the weights; they must add up to the head width the weights
    have (FLUX.1, FLUX.2, Qwen-Image, Krea 2). ``source(component, key)`` says where a value came from."""
    config = configs["transformer"]
    head, axes = config["attention_head_dim"], list(config["axes_dims_rope"])
    if sum(axes) != head:
        raise ConfigMismatch(f"its attention heads are {head} wide ({source('transformer', 'attention_head_dim')}), "
                             f"but axes_dims_rope {axes} ({source('transformer', 'axes_dims_rope')}) adds up to "
                             f"{sum(axes)}: the weights cannot tell RoPE's axes; name a diffusers folder of this model "
                             "in config_folders (models/diffusers)")


def check_text_width(configs: dict, source, key: str) -> None:
    """An ``Arch.check`` piece: the text encoder's width (``hidden_size``, in a ``text_config`` where it has one) must
    be the width the denoiser's config ``key`` takes (Qwen-Image's ``joint_attention_dim``, Krea 2's
    ``text_hidden_dim``)."""
    width = configs["transformer"][key]
    text = configs["text_encoder"].get("text_config", configs["text_encoder"])
    if text.get("hidden_size") != width:
        raise ConfigMismatch(f"its denoiser needs text_encoder with hidden_size {width} "
                             f"({source('transformer', key)}), but {source('text_encoder', 'hidden_size')} has "
                             f"hidden_size {text.get('hidden_size')}: name a diffusers folder of this model in "
                             "config_folders (models/diffusers)")


def denoiser_shapes(header: Header, not_denoiser: tuple[str, ...] = ()) -> dict[str, tuple[int, ...]]:
    """The denoiser's keys without their prefix, with shapes (BFL files: every key but those of other parts)."""
    prefix = header.denoiser_prefix
    return {k[len(prefix):]: v for k, v in header.shapes.items()
            if k.startswith(prefix) and (prefix or not k.startswith(not_denoiser))}


def count_blocks(shapes: dict, stem: str) -> int:
    """How many numbered blocks ``<stem>0.``, ``<stem>1.``, ... the weights have (a model's depth)."""
    n = 0
    while any(k.startswith(f"{stem}{n}.") for k in shapes):
        n += 1
    return n


def matches(arch: Arch, header: Header) -> bool:
    for key, shape in arch.markers:
        found = header.denoiser_shape(key)
        if found is None or (shape is not None and tuple(found) != shape):
            return False
    if any(header.denoiser_shape(key) is not None for key in arch.absent):
        return False
    return arch.rule is None or arch.rule(header, arch)


def detect(header: Header, archs) -> Arch | None:
    """The first of ``archs`` whose markers the file has, or None."""
    return next((arch for arch in archs if matches(arch, header)), None)


def nearest(header: Header, archs) -> Arch | None:
    """The row with a ``derive`` hook whose marker keys the file has (shapes aside) and whose marker shapes are
    closest to the file's (the sum of |log2(found / expected)| over every dimension); ties go to the earlier row."""
    import math

    best, best_distance = None, math.inf
    for arch in archs:
        if arch.derive is None or not matches(_keys_only(arch), header):
            continue
        distance = 0.0
        for key, shape in arch.markers:
            found = header.denoiser_shape(key)
            if shape is not None and len(found) != len(shape):
                distance = math.inf
            elif shape is not None:
                distance += sum(abs(math.log2(max(a, 1) / max(b, 1))) for a, b in zip(found, shape, strict=True))
        if distance < best_distance:
            best, best_distance = arch, distance
    return best


def _keys_only(arch: Arch) -> Arch:
    from dataclasses import replace

    return replace(arch, markers=tuple((key, None) for key, _ in arch.markers))


def describe_markers(header: Header, archs) -> str:
    """The marker keys of ``archs`` this file has (with shapes), for an error that says what was found."""
    keys = sorted({key for arch in archs for key, _ in arch.markers})
    found = [f"{key} {list(header.denoiser_shape(key))}" for key in keys if header.denoiser_shape(key) is not None]
    return "; ".join(found) if found else "none of the known denoiser keys"


def other_family(header: Header, markers) -> str | None:
    """A model diffusers knows but LoRA Deck does not load from single files, when one of ``markers``
    ((key, shape test or None, what it is)) is there. ``key`` may be a tuple of keys that must all be there (the
    first one's shape is tested): FLUX.1 Fill's 384-wide ``img_in`` with FLUX.1's ``vector_in``, which FLUX.2 lacks."""
    def shape_of(key: str):
        return header.denoiser_shape(key) or header.shapes.get(key)

    for key, test, what in markers:
        keys = key if isinstance(key, tuple) else (key,)
        shape = shape_of(keys[0])
        if shape is not None and all(shape_of(k) is not None for k in keys[1:]) and (test is None or test(shape)):
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
