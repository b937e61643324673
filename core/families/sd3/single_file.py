"""SD3 / SD3.5 single-file checkpoints (SAI MMDiT layout, ComfyUI's text_encoders.* names).

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import math
import os

from ...models.arch import CLIP_L, T5_PREFIX, Arch, ConfigMismatch, Encoder, count_blocks

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def derive(shapes: dict) -> dict:
    """SD3 / SD3.5's MMDiT config from its weights (ComfyUI's detect_unet_config reads the same keys), and what the
    shapes require of its T5 and VAE. The head width is in the weights only with SD3.5's q/k norms."""
    def seen(key: str) -> str:
        return f"{key} {list(shapes[key])}"

    hidden, channels, patch = shapes["x_embedder.proj.weight"][:3]
    depth = count_blocks(shapes, "joint_blocks.")
    values = {"in_channels": (channels, seen("x_embedder.proj.weight")),
              "patch_size": (patch, seen("x_embedder.proj.weight")), "num_layers": (depth, f"{depth} joint_blocks")}
    if "context_embedder.weight" in shapes:
        values["caption_projection_dim"] = (shapes["context_embedder.weight"][0], seen("context_embedder.weight"))
        values["joint_attention_dim"] = (shapes["context_embedder.weight"][1], seen("context_embedder.weight"))
    if "y_embedder.mlp.0.weight" in shapes:
        values["pooled_projection_dim"] = (shapes["y_embedder.mlp.0.weight"][1], seen("y_embedder.mlp.0.weight"))
    if "final_layer.linear.weight" in shapes:
        values["out_channels"] = (shapes["final_layer.linear.weight"][0] // patch ** 2,
                                  seen("final_layer.linear.weight"))
    if "pos_embed" in shapes:
        side = math.isqrt(shapes["pos_embed"][1])
        values["pos_embed_max_size"] = (side, seen("pos_embed"))
    norm = "joint_blocks.0.x_block.attn.ln_q.weight"
    if norm in shapes:  # SD3.5: RMS q/k norms, as wide as a head
        values["qk_norm"] = ("rms_norm", f"{norm} present")
        values["attention_head_dim"] = (shapes[norm][0], seen(norm))
        values["num_attention_heads"] = (hidden // shapes[norm][0], f"{seen('x_embedder.proj.weight')} / heads")
    dual = tuple(i for i in range(depth) if f"joint_blocks.{i}.x_block.attn2.qkv.weight" in shapes)
    values["dual_attention_layers"] = (dual, f"attn2 in joint_blocks {list(dual)}" if dual else "no attn2")
    out = {"transformer": values, "vae": {"latent_channels": (channels, seen("x_embedder.proj.weight"))}}
    if "joint_attention_dim" in values:
        out["text_encoder_3"] = {"d_model": values["joint_attention_dim"]}
    return out


def check(configs: dict, source) -> None:
    """Without q/k norms the head width is not in the weights: heads x width must still be the model's width."""
    config = configs["transformer"]
    width = config["num_attention_heads"] * config["attention_head_dim"]
    if width != config["caption_projection_dim"]:
        raise ConfigMismatch(f"it is {config['caption_projection_dim']} wide "
                             f"({source('transformer', 'caption_projection_dim')}), but num_attention_heads "
                             f"{config['num_attention_heads']} x attention_head_dim {config['attention_head_dim']} "
                             f"({source('transformer', 'attention_head_dim')}) is {width}: the weights cannot tell "
                             "the heads; name a diffusers folder of this model in config_folders (models/diffusers)")

_SD3_TE = (CLIP_L, Encoder("text_encoder_2", "clip_g", ("text_encoders.clip_g.transformer.",)),
           Encoder("text_encoder_3", "t5xxl", (T5_PREFIX,), required=False))
_MMDIT = "joint_blocks.0.x_block.attn.qkv.weight"
_MMDIT_X = "joint_blocks.0.x_block.attn2.qkv.weight"

_DERIVE = {"derive": derive, "check": check}

ARCHS = (
    Arch("sd35-large", "Stable Diffusion 3.5 Large", ((_MMDIT, (7296, 2432)),), _SD3_TE, CONFIGS, **_DERIVE),
    Arch("sd35-medium", "Stable Diffusion 3.5 Medium",
         ((_MMDIT, (4608, 1536)), (_MMDIT_X, (4608, 1536)), ("pos_embed", (1, 147456, 1536))), _SD3_TE, CONFIGS,
         **_DERIVE),
    Arch("sd3-medium", "Stable Diffusion 3 Medium", ((_MMDIT, (4608, 1536)), ("pos_embed", (1, 36864, 1536))),
         _SD3_TE, CONFIGS, absent=(_MMDIT_X,), **_DERIVE),
    Arch("tiny-sd3", "tiny SD3 (built-in)", ((_MMDIT, (96, 32)), ("pos_embed", (1, 9216, 32))), _SD3_TE, CONFIGS,
         tiny=True, **_DERIVE),
)
