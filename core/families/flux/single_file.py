"""FLUX.1 single-file checkpoints (BFL layout, ComfyUI's text_encoders.* names) and how their weights reach
diffusers' converter.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import CLIP_L, T5_PREFIX, UNET_PREFIX, Arch, ConfigMismatch, Encoder, check_rope_axes, count_blocks

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
FLUX1_WIDTH = 3072  # diffusers' Flux converter splits single_blocks.N.linear1 with FLUX.1's fixed sizes


def state_dict(tensors: dict, config: dict) -> dict:
    """Original Flux keys -> diffusers keys by diffusers' own converter. It hard-codes FLUX.1's width (3072) when
    it splits ``single_blocks.N.linear1`` into q, k, v and mlp; for other widths (the tiny model) it gets
    placeholders of FLUX.1's size for those tensors and the real ones are split here by the model's width."""
    import torch
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    inner = config["num_attention_heads"] * config["attention_head_dim"]
    if inner == FLUX1_WIDTH:
        return tensors
    real = {k: v for k, v in tensors.items() if ".linear1." in k and "single_blocks." in k}
    fake = {k: torch.empty((3 * FLUX1_WIDTH + 4 * FLUX1_WIDTH, *v.shape[1:]), device="meta") for k, v in real.items()}
    converted = convert_flux_transformer_checkpoint_to_diffusers({**tensors, **fake})
    for key, tensor in real.items():
        block, kind = key.removeprefix(UNET_PREFIX).split(".")[1], key.rsplit(".", 1)[1]
        parts = torch.split(tensor, (inner, inner, inner, tensor.shape[0] - 3 * inner))
        for name, part in zip(("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), parts, strict=True):
            converted[f"single_transformer_blocks.{block}.{name}.{kind}"] = part  # a view: no copy
    return converted


def derive(shapes: dict) -> dict:
    """FLUX.1's transformer config from its weights (ComfyUI's detect_unet_config reads the same keys, and the heads
    from the q/k norm width where ComfyUI assumes 24), and what the shapes require of its text encoders and VAE."""
    hidden, packed = shapes["img_in.weight"]
    mlp = shapes.get("double_blocks.0.img_mlp.0.weight")
    if mlp is not None and mlp[0] != 4 * hidden:
        raise ConfigMismatch(f"its MLP is {mlp[0]} wide (double_blocks.0.img_mlp.0.weight {list(mlp)}), not 4 x its "
                             f"width {hidden}, which diffusers' FluxTransformer2DModel fixes")

    def seen(key: str) -> str:
        return f"{key} {list(shapes[key])}"

    norm = "double_blocks.0.img_attn.norm.key_norm.scale"
    head = shapes[norm][0] if norm in shapes else 128
    depth, single = count_blocks(shapes, "double_blocks."), count_blocks(shapes, "single_blocks.")
    values = {"in_channels": (packed, seen("img_in.weight")), "num_layers": (depth, f"{depth} double_blocks"),
              "num_single_layers": (single, f"{single} single_blocks"),
              "attention_head_dim": (head, seen(norm) if norm in shapes else "no q/k norm: FLUX.1's 128"),
              "num_attention_heads": (hidden // head, f"{seen('img_in.weight')} / {head}-wide heads"),
              "guidance_embeds": (_GUIDANCE in shapes, f"guidance_in {'present' if _GUIDANCE in shapes else 'absent'}")}
    out = {"transformer": values,
           "vae": {"latent_channels": (packed // 4, f"{seen('img_in.weight')}: 2 x 2 packed latent channels")}}
    if "txt_in.weight" in shapes:
        values["joint_attention_dim"] = (shapes["txt_in.weight"][1], seen("txt_in.weight"))
        out["text_encoder_2"] = {"d_model": values["joint_attention_dim"]}
    if "vector_in.in_layer.weight" in shapes:
        values["pooled_projection_dim"] = (shapes["vector_in.in_layer.weight"][1], seen("vector_in.in_layer.weight"))
        out["text_encoder"] = {"hidden_size": values["pooled_projection_dim"]}
    final = shapes.get("final_layer.linear.weight")
    if final is not None and final[0] != packed:
        values["out_channels"] = (final[0], seen("final_layer.linear.weight"))
    return out


check = check_rope_axes  # RoPE's axes are not in the weights (models/arch.py)


_FLUX_TE = (CLIP_L, Encoder("text_encoder_2", "t5xxl", (T5_PREFIX,)))
_FLUX = "double_blocks.0.img_attn.qkv.weight"
_GUIDANCE = "guidance_in.in_layer.weight"
# FLUX.2's and Chroma's keys: their files have every marker of a FLUX.1 file
_NOT_FLUX1 = ("double_stream_modulation_img.lin.weight", "single_stream_modulation.lin.weight",
              "distilled_guidance_layer.in_proj.weight")
_FLUX_FILES = {"configs": CONFIGS, "vae_file": "ae.safetensors", "prepare": state_dict, "derive": derive,
               "check": check}

ARCHS = (
    Arch("flux-dev", "FLUX.1 dev", ((_FLUX, (9216, 3072)), ("img_in.weight", (3072, 64)), (_GUIDANCE, None)),
         _FLUX_TE, absent=_NOT_FLUX1, **_FLUX_FILES),
    Arch("flux-schnell", "FLUX.1 schnell", ((_FLUX, (9216, 3072)), ("img_in.weight", (3072, 64))), _FLUX_TE,
         absent=(_GUIDANCE, *_NOT_FLUX1), **_FLUX_FILES),
    Arch("tiny-flux", "tiny Flux (built-in)", ((_FLUX, (96, 32)), ("img_in.weight", (32, 4))), _FLUX_TE, tiny=True,
         absent=_NOT_FLUX1, **_FLUX_FILES),
)
# FLUX.2 files also have a 128-wide img_in (and no vector_in): they load as FLUX.2, any size of it
OTHER_VARIANTS = ((("img_in.weight", "vector_in.in_layer.weight"), lambda s: s[-1] in (128, 384),
                   "a FLUX.1 Fill or Depth model"),)
