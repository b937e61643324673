"""Z-Image single-file checkpoints: ComfyUI's ``models/diffusion_models`` files (``z_image_turbo_bf16.safetensors``,
Lumina 2 ``NextDiT`` names: fused ``attention.qkv``, ``x_embedder``, ``final_layer``), bare or under
``model.diffusion_model.``, with the Qwen3-4B text encoder (``models/text_encoders/qwen_3_4b.safetensors``) and the
FLUX.1 VAE (``ae.safetensors``) beside them or, in an all-in-one checkpoint, inside. diffusers' own
``convert_z_image_transformer_checkpoint_to_diffusers`` converts the denoiser.

Z-Image Turbo and Z-Image (Base) have the same keys and shapes: a file cannot tell them apart, so a single file
loads with Turbo's scheduler (shift 3; Base ships shift 6), as diffusers' own ``from_single_file`` does.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import Arch, Encoder

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

# ComfyUI's checkpoints keep the text encoder under text_encoders.qwen3_4b.transformer.model.
_QWEN3 = (Encoder("text_encoder", "qwen3_4b", ("text_encoders.qwen3_4b.transformer.model.",)),)
_QKV, _X = "layers.0.attention.qkv.weight", "x_embedder.weight"
_OMNI = "siglip_embedder.1.weight"
_FILES = {"configs": CONFIGS, "vae_file": "ae.safetensors (the FLUX.1 VAE)", "absent": (_OMNI,)}

ARCHS = (
    Arch("z-image", "Z-Image (Turbo)", ((_QKV, (11520, 3840)), (_X, (3840, 64)), ("cap_pad_token", None)), _QWEN3,
         **_FILES),
    Arch("tiny-zimage", "tiny Z-Image (built-in)", ((_QKV, (96, 32)), (_X, (32, 64)), ("cap_pad_token", None)),
         _QWEN3, tiny=True, **_FILES),
)
OTHER_VARIANTS = (
    (_OMNI, None, "a Z-Image Omni model"),
    ("control_all_x_embedder.2-1.weight", None, "a Z-Image ControlNet (Fun ControlNet Union)"),
    ("control_layers.0.adaLN_modulation.0.weight", None, "a Z-Image ControlNet (Fun ControlNet Union)"),
)
