"""FLUX.2 split files: BFL's layout, what ComfyUI users keep in ``models/diffusion_models``
(``flux-2-klein-4b.safetensors``, ``flux-2-klein-9b*.safetensors``, ``flux2-dev*.safetensors``, or ComfyUI-GGUF's
``.gguf``), with their text encoder in ``models/text_encoders`` and the FLUX.2 VAE (``flux2-vae.safetensors``) in
``models/vae``.

The denoiser goes through diffusers' own ``convert_flux2_transformer_checkpoint_to_diffusers`` (it splits the
double blocks' fused ``qkv`` into thirds and keeps the single blocks fused, so any width converts). Its config is
read off the weights (``derive``): FLUX.2 [klein] 4B, 9B and [dev] differ only in depth and width, as ComfyUI's
``detect_unet_config`` reads them. The VAE has no single-file loader in diffusers: ``vae.py`` renames BFL's VAE keys
and hands them to diffusers' ``convert_ldm_vae_checkpoint``.

A file cannot tell klein base from klein distilled (same keys and shapes): the real rows load as distilled (the
released ``FLUX.2-klein-4B`` / ``-9B``, 4 steps, guidance ignored), the built-in tiny row as base, as it is built.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import Arch, ConfigMismatch, Encoder, check_rope_axes, count_blocks
from .vae import vae_model

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
STACKED = 3  # the pipelines stack 3 hidden states of the text encoder: txt_in is 3 x its width wide
GUIDANCE = "guidance_in.in_layer.weight"
MODULATION = "double_stream_modulation_img.lin.weight"  # only FLUX.2 files have it
QKV = "double_blocks.0.img_attn.qkv.weight"


def derive(shapes: dict) -> dict:
    """FLUX.2's transformer config from its weights (ComfyUI's detect_unet_config reads the same keys; the heads
    from the q/k norm width, where ComfyUI 0.8.0 assumes dev's 48), and what the shapes require of the text
    encoder (a third of txt_in's width) and the VAE (a quarter of the packed input channels)."""
    def seen(key: str) -> str:
        return f"{key} {list(shapes[key])}"

    hidden, packed = shapes["img_in.weight"]
    norm = "double_blocks.0.img_attn.norm.query_norm.scale"
    head = shapes[norm][0] if norm in shapes else 128
    if hidden % head:
        raise ConfigMismatch(f"its width {hidden} ({seen('img_in.weight')}) is not a whole number of {head}-wide "
                             f"heads ({seen(norm) if norm in shapes else 'FLUX.2 heads'})")
    depth, single = count_blocks(shapes, "double_blocks."), count_blocks(shapes, "single_blocks.")
    values = {"in_channels": (packed, seen("img_in.weight")), "num_layers": (depth, f"{depth} double_blocks"),
              "num_single_layers": (single, f"{single} single_blocks"),
              "attention_head_dim": (head, seen(norm) if norm in shapes else "no q/k norm: FLUX.2's 128"),
              "num_attention_heads": (hidden // head, f"{seen('img_in.weight')} / {head}-wide heads"),
              "guidance_embeds": (GUIDANCE in shapes, f"guidance_in {'present' if GUIDANCE in shapes else 'absent'}")}
    mlp = "double_blocks.0.img_mlp.0.weight"  # SwiGLU: gate and value rows, each mlp_ratio x the width
    if mlp in shapes:
        values["mlp_ratio"] = (shapes[mlp][0] / (2 * hidden), f"{seen(mlp)}: 2 x mlp_ratio x {hidden}")
    if "time_in.in_layer.weight" in shapes:
        values["timestep_guidance_channels"] = (shapes["time_in.in_layer.weight"][1], seen("time_in.in_layer.weight"))
    final = shapes.get("final_layer.linear.weight")
    if final is not None and final[0] != packed:
        values["out_channels"] = (final[0], seen("final_layer.linear.weight"))
    out = {"transformer": values}
    if packed % 4 == 0:
        out["vae"] = {"latent_channels": (packed // 4, f"{seen('img_in.weight')}: 2 x 2 packed latent channels")}
    if "txt_in.weight" in shapes:
        context = shapes["txt_in.weight"][1]
        values["joint_attention_dim"] = (context, seen("txt_in.weight"))
        if context % STACKED:
            raise ConfigMismatch(f"its text input is {context} wide ({seen('txt_in.weight')}), not {STACKED} stacked "
                                 "hidden states of a text encoder")
        out["text_encoder"] = {"hidden_size": (context // STACKED, f"{seen('txt_in.weight')}: {STACKED} stacked "
                                                                   "text-encoder hidden states")}
    return out


check = check_rope_axes  # RoPE's axes are not in the weights (models/arch.py)


def files(configs: str, vae_file: str = "flux2-vae.safetensors (the FLUX.2 VAE)") -> dict:
    """The Arch fields every FLUX.2 row shares (FLUX.2 [dev]'s rows too: flux2dev/single_file.py)."""
    return {"configs": configs, "vae_file": vae_file, "derive": derive, "check": check, "builders": {"vae": vae_model}}


def _qwen3(kind: str) -> tuple[Encoder, ...]:
    return (Encoder("text_encoder", kind, ()),)  # split files only: no all-in-one FLUX.2 checkpoints


_KLEIN = {**files(CONFIGS), "absent": (GUIDANCE,)}

ARCHS = (
    Arch("klein-4b", "FLUX.2 [klein] 4B", ((QKV, (9216, 3072)), ("img_in.weight", (3072, 128)), (MODULATION, None)),
         _qwen3("qwen3_4b"), **_KLEIN),
    Arch("klein-9b", "FLUX.2 [klein] 9B", ((QKV, (12288, 4096)), ("img_in.weight", (4096, 128)), (MODULATION, None)),
         _qwen3("qwen3_8b"), **_KLEIN),
    Arch("tiny-flux2", "tiny FLUX.2 [klein] (built-in)", ((QKV, (96, 32)), ("img_in.weight", (32, 16)),
                                                          (MODULATION, None)), _qwen3("qwen3_4b"), tiny=True, **_KLEIN),
)
