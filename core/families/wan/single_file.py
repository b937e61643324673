"""Wan split files: ComfyUI's ``models/diffusion_models`` denoisers in Wan-AI's original names
(``wan2.1_t2v_1.3B_bf16.safetensors``, ``wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors`` + ``..._low_noise_...``,
their GGUF conversions), bare or under ``model.diffusion_model.``, with the UMT5-XXL text encoder
(``models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors``, which carries its own tokenizer) and the Wan 2.1 VAE
(``models/vae/wan_2.1_vae.safetensors``; TI2V-5B: ``wan2.2_ti2v_5B_fp16.safetensors`` with ``wan2.2_vae.safetensors``).
diffusers' own ``convert_wan_transformer_to_diffusers`` converts the denoisers, ``convert_wan_vae_to_diffusers`` the
VAE (``core/models/wan_vae.py``, which also renames the Wan 2.2 VAE's stages).

Wan 2.2 A14B is two denoisers of Wan 2.1 14B's shapes: the high-noise expert (``transformer``) and the low-noise
one (``transformer_2``). A file named as ComfyUI's and QuantStack's are (``high_noise`` / ``low_noise``,
``HighNoise`` / ``LowNoise``) loads as A14B with its pair found by the other name beside it; a pair picked
explicitly (Load Diffusion Model's second denoiser) makes any 14B file A14B.

The config comes from the weights as ComfyUI's model detection reads it (``comfy/model_detection.py``, "Wan 2.1"):
width from ``head.modulation``, 128-wide heads, depth, feed-forward width, input / output channels, text,
frequency and image widths.

- Wan 2.1 I2V (36 input channels, ``img_emb``): ``WanImageToVideoPipeline`` with ComfyUI's
  ``clip_vision_h.safetensors`` from ``models/clip_vision`` as its image encoder (transformers' ``CLIPVisionModel``,
  whose second-to-last hidden state diffusers' pipeline reads).
- Wan 2.2 I2V A14B (36 input channels, no image encoder): ``WanImageToVideoPipeline`` with its two experts.
- TI2V-5B (48 latent channels): ``WanPipeline`` with ``expand_timesteps`` (text to video; an image makes it
  image-to-video, Generate's edit mode).
- Not loaded from split files: FLF2V, VACE, camera control, S2V, HuMo, Animate; each is named when refused.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os
import re

from ...models.arch import Arch, ConfigMismatch, Encoder, count_blocks

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
HEAD_WIDTH = 128  # Wan's attention head width (all released sizes; ComfyUI's detection: num_heads = dim // 128)

_MOD, _PATCH, _IMG = "head.modulation", "patch_embedding.weight", "img_emb.proj.0.weight"
_FLF = "img_emb.emb_pos"  # Wan 2.1 FLF2V (first-last-frame)
# the other Wan variants (ComfyUI's model detection: VACE, camera control, S2V, HuMo, Animate), never one of these rows
_VARIANTS = (("vace_patch_embedding.weight", "a Wan VACE model"),
             ("control_adapter.conv.weight", "a Wan camera-control model"),
             ("casual_audio_encoder.encoder.final_linear.weight", "a Wan 2.2 S2V (speech-to-video) model"),
             ("audio_proj.audio_proj_glob_1.layer.bias", "a Wan HuMo model"),
             ("face_adapter.fuser_blocks.0.k_norm.weight", "a Wan Animate model"))
_UMT5 = (Encoder("text_encoder", "umt5xxl", ()),)
_FILES = {"configs": CONFIGS, "vae_file": "wan_2.1_vae.safetensors (the Wan 2.1 VAE)",
          "absent": (_IMG, *(key for key, _ in _VARIANTS))}
_NOISE = re.compile(r"(high|low)([_\- ]?noise)", re.IGNORECASE)
_SWAP = {"high": "low", "low": "high", "High": "Low", "Low": "High", "HIGH": "LOW", "LOW": "HIGH"}


def experts(path: str) -> dict[str, str] | None:
    """Wan 2.2 A14B's two denoiser files by ComfyUI's usual names: {"transformer": high noise, "transformer_2": low
    noise}, the other one's name made by swapping high and low; None when the name names no expert."""
    folder, name = os.path.split(path)
    found = list(_NOISE.finditer(name))
    if len(found) != 1:
        return None
    match = found[0]
    word = match.group(1)
    other = os.path.join(folder, name[: match.start(1)] + _SWAP.get(word, "low" if word.lower() == "high" else "high")
                         + name[match.end(1):])
    high = word.lower() == "high"
    return {"transformer": path if high else other, "transformer_2": other if high else path}


def _named(header, arch) -> bool:
    return experts(header.path) is not None


def derive(shapes: dict) -> dict:
    """The transformer's config from its weights, as ComfyUI's model detection reads it."""
    modulation, patch = shapes[_MOD], shapes[_PATCH]
    dim = modulation[-1]
    evidence = f"{_MOD} {list(modulation)}"
    if dim % HEAD_WIDTH:
        raise ConfigMismatch(f"its width {dim} ({evidence}) is not a multiple of Wan's {HEAD_WIDTH}-wide heads")
    ffn = shapes["blocks.0.ffn.0.weight"]
    head = shapes["head.head.weight"]
    cells = patch[2] * patch[3] * patch[4]
    text, time = shapes["text_embedding.0.weight"], shapes["time_embedding.0.weight"]
    out = head[0] // cells
    image = shapes.get(_IMG)  # Wan 2.1 I2V: the CLIP-vision width, and k_img / v_img as wide as the model
    image_dim = (image[0] if image else None, f"{_IMG} {list(image)}" if image else f"no {_IMG}")
    added = (dim if image else None, "blocks.0.cross_attn.k_img.weight" if image else "no k_img / v_img")
    transformer = {
        "num_attention_heads": (dim // HEAD_WIDTH, f"{evidence}: {dim} / {HEAD_WIDTH}-wide heads"),
        "attention_head_dim": (HEAD_WIDTH, f"{evidence}: Wan's {HEAD_WIDTH}-wide heads"),
        "num_layers": (count_blocks(shapes, "blocks."), f"{count_blocks(shapes, 'blocks.')} blocks.N"),
        "ffn_dim": (ffn[0], f"blocks.0.ffn.0.weight {list(ffn)}"),
        "in_channels": (patch[1], f"{_PATCH} {list(patch)}"),
        "out_channels": (out, f"head.head.weight {list(head)}: {cells} cells per patch"),
        "patch_size": ([patch[2], patch[3], patch[4]], f"{_PATCH} {list(patch)}"),
        "text_dim": (text[1], f"text_embedding.0.weight {list(text)}"),
        "freq_dim": (time[1], f"time_embedding.0.weight {list(time)}"),
        "image_dim": image_dim,
        "added_kv_proj_dim": added,
    }
    derived = {"transformer": transformer,
               "text_encoder": {"d_model": (text[1], f"text_embedding.0.weight {list(text)}")},
               "vae": {"z_dim": (out, f"head.head.weight {list(head)}")}}
    if image:
        derived["image_encoder"] = {"hidden_size": image_dim}
    return derived


def _row(key: str, title: str, dim: int, tiny: bool = False, pair: bool = False, paired: str = "",
         channels: int = 16, image: bool = False) -> Arch:
    markers = ((_MOD, (1, 2, dim)), (_PATCH, (dim, channels, 1, 2, 2)), ("text_embedding.0.weight", None))
    files = dict(_FILES, vae_file="wan2.2_vae.safetensors (the Wan 2.2 VAE)") if channels == 48 else _FILES
    if image:  # Wan 2.1 I2V: the image cross-attention (not FLF2V's extra image positions)
        markers += ((_IMG, None),)
        files = dict(files, absent=(_FLF, *(key for key, _ in _VARIANTS)))
    # Wan 2.2 I2V (36 channels) is always two experts: no name rule, a file whose name tells no pair needs one picked
    rule = _named if pair and channels == 16 else None
    return Arch(key, title, markers, _UMT5, tiny=tiny, rule=rule, derive=None if tiny else derive,
                experts=experts if pair else None, paired=paired, **files)


ARCHS = (
    _row("wan21-t2v-1.3b", "Wan 2.1 T2V 1.3B", 1536),
    _row("wan22-t2v-a14b", "Wan 2.2 T2V A14B", 5120, pair=True),
    _row("wan21-t2v-14b", "Wan 2.1 T2V 14B", 5120, paired="wan22-t2v-a14b"),
    _row("wan21-i2v-14b", "Wan 2.1 I2V 14B", 5120, channels=36, image=True),
    _row("wan22-ti2v-5b", "Wan 2.2 TI2V-5B", 3072, channels=48),
    _row("wan22-i2v-a14b", "Wan 2.2 I2V A14B", 5120, pair=True, channels=36),
    _row("tiny-wan22", "tiny Wan 2.2 A14B (built-in)", 32, tiny=True, pair=True),
    _row("tiny-wan22-ti2v", "tiny Wan 2.2 TI2V-5B (built-in)", 32, tiny=True, channels=48),
    _row("tiny-wan22-i2v", "tiny Wan 2.2 I2V A14B (built-in)", 32, tiny=True, pair=True, channels=36),
    _row("tiny-wan", "tiny Wan 2.1 (built-in)", 32, tiny=True, paired="tiny-wan22"),
    _row("tiny-wan-i2v", "tiny Wan 2.1 I2V (built-in)", 32, tiny=True, channels=36, image=True),
)
OTHER_VARIANTS = (
    (_FLF, None, "a Wan 2.1 first-last-frame (FLF2V) model"),
    *((key, None, what) for key, what in _VARIANTS),
    (_PATCH, lambda s: len(s) == 5 and s[1] == 36, "a Wan image-to-video model of another size than Wan 2.2 I2V "
                                                   "A14B (not loaded from split files: use its diffusers folder)"),
)
