"""AuraFlow split and all-in-one files: fal's ``aura_flow_0.1`` / ``0.2`` / ``0.3.safetensors`` (ComfyUI's
checkpoint layout: the MMDiT under ``model.diffusion_model.``, the Pile-T5-XL text encoder under
``text_encoders.pile_t5xl.transformer.``, the SDXL VAE under ``vae.``), or the denoiser alone in
``models/diffusion_models`` (bf16, fp8, scaled fp8, ComfyUI-GGUF) with the encoder and VAE as separate files. The
denoiser is in ComfyUI's / fal's names (``comfy/ldm/aura/mmdit.py``: ``double_layers.N.attn.w2q``, ``single_layers``,
``cond_seq_linear``...), converted by diffusers' ``convert_auraflow_transformer_checkpoint_to_diffusers``; the text
encoder is a UMT5 of Pile-T5-XL's size (ComfyUI's ``comfy/text_encoders/aura_t5.py``: 2048 wide, 24 layers, vocab
32128; a separate file in transformers' T5 names, as ComfyUI's text-encoder loader takes it), with the Llama
sentencepiece tokenizer ComfyUI bundles (``comfy/text_encoders/t5_pile_tokenizer/tokenizer.model``); the VAE is the
SDXL VAE (``sdxl_vae.safetensors``).

Any depth: the config is read off the weights as ComfyUI's model detection reads it (``comfy/model_detection.py``:
``max_seq`` from ``positional_encoding``, ``cond_seq_dim`` from ``cond_seq_linear``, the double and single layer
counts), plus the width and the latent channels (ComfyUI fixes those: 3072 wide, 2 x 2 patches of 4 channels). The
head count is not in the weights (the q/k norms have no weights; ComfyUI always runs 12 heads): it comes from the
shipped config or a config folder, and must divide the width (``check``).

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import UNET_PREFIX, Arch, ConfigMismatch, Encoder, count_blocks

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

# ComfyUI's checkpoints keep the text encoder as its AuraT5Model names it (comfy/text_encoders/aura_t5.py)
_PILE_T5 = (Encoder("text_encoder", "pile_t5xl", ("text_encoders.pile_t5xl.transformer.",)),)
_COND, _W1Q, _X = "cond_seq_linear.weight", "double_layers.0.attn.w1q.weight", "init_x_linear.weight"


def _hidden(width: int) -> int:
    """The feed-forward width both ComfyUI's MLP and diffusers' AuraFlowFeedForward compute from the model width."""
    hidden = int(2 * 4 * width / 3)
    return hidden if hidden % 256 == 0 else hidden + 256 - hidden % 256


def derive(shapes: dict) -> dict:
    """The transformer's config from its shapes, and what they require of the text encoder and the VAE."""
    width, cond = shapes[_COND]
    x_width, patched = shapes[_X]
    out = shapes["final_linear.weight"][0]
    max_seq = shapes["positional_encoding"][1]
    time = shapes["t_embedder.mlp.0.weight"][0]
    if x_width != width or time != width:
        raise ConfigMismatch(f"init_x_linear.weight [{x_width}, {patched}] and t_embedder.mlp.0.weight [{time}, ...] "
                             f"are not as wide as cond_seq_linear.weight [{width}, {cond}]")
    if patched % 4 or out % 4:
        raise ConfigMismatch(f"init_x_linear.weight [..., {patched}] and final_linear.weight [{out}, ...] are not "
                             "2 x 2 patches of latent channels")
    side = round(max_seq ** 0.5)
    if side * side != max_seq:
        raise ConfigMismatch(f"positional_encoding [1, {max_seq}, ...] is not a square grid of positions")
    hidden = _hidden(width)
    for key, shape in shapes.items():  # every feed-forward: its width is fixed by the model's in both classes
        want = (hidden, width) if key.endswith((".c_fc1.weight", ".c_fc2.weight")) else \
            (width, hidden) if key.endswith(".c_proj.weight") else None
        if want is not None and tuple(shape) != want:
            raise ConfigMismatch(f"{key} {list(shape)} is not the feed-forward width {hidden} a {width}-wide "
                                 "AuraFlow has (fixed by the width in diffusers and ComfyUI)")
    double, single = count_blocks(shapes, "double_layers."), count_blocks(shapes, "single_layers.")
    return {"transformer": {
        "num_mmdit_layers": (double, f"{double} double_layers"),
        "num_single_dit_layers": (single, f"{single} single_layers"),
        "in_channels": (patched // 4, f"init_x_linear.weight [{width}, {patched}]: 2 x 2 patches"),
        "out_channels": (out // 4, f"final_linear.weight [{out}, {width}]: 2 x 2 patches"),
        "joint_attention_dim": (cond, f"cond_seq_linear.weight [{width}, {cond}]"),
        "caption_projection_dim": (width, f"cond_seq_linear.weight [{width}, {cond}]"),
        "pos_embed_max_size": (max_seq, f"positional_encoding [1, {max_seq}, {width}]"),
    }, "text_encoder": {"d_model": (cond, f"cond_seq_linear.weight [{width}, {cond}]")},
        "vae": {"latent_channels": (patched // 4, f"init_x_linear.weight [{width}, {patched}]: 2 x 2 patches")}}


def check(configs: dict, source) -> None:
    """The heads (not in the weights) times their width must be the width the weights have."""
    config = configs["transformer"]
    heads, head, width = config["num_attention_heads"], config["attention_head_dim"], config["caption_projection_dim"]
    if heads * head != width:
        raise ConfigMismatch(
            f"its blocks are {width} wide ({source('transformer', 'caption_projection_dim')}), but "
            f"num_attention_heads {heads} ({source('transformer', 'num_attention_heads')}) x attention_head_dim "
            f"{head} ({source('transformer', 'attention_head_dim')}) is {heads * head}: the weights cannot tell the "
            "heads; name a diffusers folder of this model in config_folders (models/diffusers)")


def prepare(tensors: dict, config: dict) -> dict:
    """A checkpoint's ``model.diffusion_model.`` goes (views): diffusers' AuraFlow converter reads bare names."""
    return {k.removeprefix(UNET_PREFIX): v for k, v in tensors.items()}


# the SD 1.5 VAE has the SDXL VAE's shapes: a file named for SDXL wins
_FILES = {"configs": CONFIGS, "vae_file": "the SDXL VAE (sdxl_vae.safetensors)", "vae_hints": ("sdxl",),
          "derive": derive, "check": check, "prepare": prepare}

ARCHS = (
    Arch("auraflow", "AuraFlow", ((_COND, (3072, 2048)), (_W1Q, (3072, 3072))), _PILE_T5, **_FILES),
    Arch("tiny-auraflow", "tiny AuraFlow (built-in)", ((_COND, (32, 32)), (_W1Q, (32, 32))), _PILE_T5, tiny=True,
         **_FILES),
)
