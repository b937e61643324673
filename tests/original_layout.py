"""The inverse of diffusers' single-file conversion: diffusers state dicts -> original (LDM/SGM/SAI/BFL) keys.

Written from diffusers 0.42.1 ``loaders/single_file_utils.py`` (``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint``, ``convert_open_clip_checkpoint``, ``convert_sd3_transformer_checkpoint_to_diffusers``,
``convert_flux_transformer_checkpoint_to_diffusers``) read backwards. The tests prove it by the round trip:
what these functions write, diffusers reads back to the very same tensors.
"""

from __future__ import annotations

import torch

UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
            "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
            "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
               "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                   "self_attn.out_proj": "attn.out_proj"}


def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    # diffusers' swap_scale_shift: (shift, scale) <-> (scale, shift); its own inverse
    first, second = t.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _rename(name: str, table: dict[str, str]) -> str:
    for new, old in table.items():
        if name == new or name.startswith(new + "."):
            return old + name[len(new):]
    return name


def unet_to_ldm(sd: dict, layers: int, up_with_attention: set[int]) -> dict:
    """UNet2DConditionModel keys -> ``model.diffusion_model.*`` (input/middle/output blocks)."""
    out = {}
    for key, tensor in sd.items():
        out["model.diffusion_model." + _unet_key(key, layers, up_with_attention)] = tensor
    return out


def _unet_key(key: str, layers: int, up_with_attention: set[int]) -> str:
    top = _rename(key, UNET_TOP)
    if top != key:
        return top
    parts = key.split(".")
    group, rest = parts[0], parts[4:]
    if group == "mid_block":
        kind, index, rest = parts[1], int(parts[2]), parts[3:]
        if kind == "attentions":
            return "middle_block.1." + ".".join(rest)
        return f"middle_block.{2 * index}." + _rename(".".join(rest), UNET_RESNET)
    block, kind, index = int(parts[1]), parts[2], int(parts[3])
    stride = layers + 1
    if group == "down_blocks":
        if kind == "downsamplers":
            return f"input_blocks.{(block + 1) * stride}.0.op." + ".".join(parts[5:])
        slot = 1 + block * stride + index
        sub = "0." + _rename(".".join(rest), UNET_RESNET) if kind == "resnets" else "1." + ".".join(rest)
        return f"input_blocks.{slot}.{sub}"
    if kind == "upsamplers":
        position = 2 if block in up_with_attention else 1
        return f"output_blocks.{block * stride + layers}.{position}.conv." + ".".join(parts[5:])
    sub = "0." + _rename(".".join(rest), UNET_RESNET) if kind == "resnets" else "1." + ".".join(rest)
    return f"output_blocks.{block * stride + index}.{sub}"


def vae_to_ldm(sd: dict, prefix: str = "first_stage_model.") -> dict:
    """AutoencoderKL keys -> LDM ``encoder.down.N.block.M`` / ``decoder.up.N`` / ``mid.attn_1`` keys."""
    levels = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("decoder.up_blocks."))
    out = {}
    for key, tensor in sd.items():
        new, tensor = _vae_key(key, tensor, levels)
        out[prefix + new] = tensor
    return out


def _vae_key(key: str, tensor: torch.Tensor, levels: int):
    side, rest = key.split(".", 1)
    if rest.startswith("conv_norm_out."):
        return f"{side}.norm_out.{rest.split('.', 1)[1]}", tensor
    parts = rest.split(".")
    if parts[0] == "mid_block":
        if parts[1] == "resnets":
            return f"{side}.mid.block_{int(parts[2]) + 1}." + ".".join(parts[3:]), tensor
        name = _rename(".".join(parts[3:]), VAE_ATTENTION)
        if tensor.ndim == 2:  # LDM keeps the attention projections as 1x1 convolutions
            tensor = tensor[:, :, None, None]
        return f"{side}.mid.attn_1.{name}", tensor
    if parts[0] in ("down_blocks", "up_blocks"):
        level = int(parts[1]) if parts[0] == "down_blocks" else levels - 1 - int(parts[1])
        ldm = "down" if parts[0] == "down_blocks" else "up"
        if parts[2] == "resnets":
            name = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
            return f"{side}.{ldm}.{level}.block.{parts[3]}.{name}", tensor
        sampler = "downsample" if ldm == "down" else "upsample"
        return f"{side}.{ldm}.{level}.{sampler}.conv." + ".".join(parts[5:]), tensor
    return key, tensor


def clip_to_ldm(sd: dict, prefix: str) -> dict:
    """transformers CLIP text keys under ``prefix`` (``cond_stage_model.transformer.`` ...), ``text_model.`` kept."""
    out = {}
    for key, tensor in sd.items():
        flat = not key.startswith("text_model.") and key != "text_projection.weight"
        out[prefix + ("text_model." + key if flat else key)] = tensor
    return out


def clip_to_open_clip(sd: dict, prefix: str) -> dict:
    """transformers CLIP text keys -> OpenCLIP (``transformer.resblocks.N.attn.in_proj_weight`` ...)."""
    sd = {k.removeprefix("text_model."): v for k, v in sd.items()}
    token = sd.pop("embeddings.token_embedding.weight")
    # SD 2.x's encoder has no projection in diffusers, but its files carry OpenCLIP's (which diffusers ignores)
    projection = sd.pop("text_projection.weight", None)
    projection = torch.zeros(token.shape[1], token.shape[1], device=token.device) if projection is None else projection
    out = {prefix + "token_embedding.weight": token,
           prefix + "positional_embedding": sd.pop("embeddings.position_embedding.weight"),
           prefix + "ln_final.weight": sd.pop("final_layer_norm.weight"),
           prefix + "ln_final.bias": sd.pop("final_layer_norm.bias"),
           prefix + "text_projection": projection.T.contiguous()}
    layers = {int(k.split(".")[2]) for k in sd if k.startswith("encoder.layers.")}
    for i in sorted(layers):
        src, dst = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat([sd.pop(f"{src}self_attn.{p}_proj.{kind}") for p in "qkv"])
        for key in [k for k in sd if k.startswith(src)]:
            out[dst + _rename(key[len(src):], OPEN_CLIP_LAYER)] = sd.pop(key)
    assert not sd, f"unmapped CLIP keys: {sorted(sd)[:5]}"
    return out


def t5_to_ldm(sd: dict, prefix: str) -> dict:
    # ComfyUI/SAI T5 files keep the shared embedding once (no encoder.embed_tokens copy)
    return {prefix + k: v for k, v in sd.items() if k != "encoder.embed_tokens.weight"}


def sd3_to_original(sd: dict, prefix: str = "model.diffusion_model.") -> dict:
    """SD3Transformer2DModel keys -> SAI MMDiT keys (``joint_blocks.N.x_block`` / ``context_block``)."""
    sd = dict(sd)
    out = {"pos_embed": sd.pop("pos_embed.pos_embed"), "x_embedder.proj.weight": sd.pop("pos_embed.proj.weight"),
           "x_embedder.proj.bias": sd.pop("pos_embed.proj.bias"),
           "final_layer.linear.weight": sd.pop("proj_out.weight"), "final_layer.linear.bias": sd.pop("proj_out.bias")}
    for kind in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{kind}"] = _swap_halves(sd.pop(f"norm_out.linear.{kind}"))
        for new, old in (("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
                         ("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
                         ("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
                         ("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2"),
                         ("context_embedder", "context_embedder")):
            out[f"{new}.{kind}"] = sd.pop(f"{old}.{kind}")
    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("transformer_blocks."))
    for i in range(layers):
        _sd3_block(sd, out, i, last=i == layers - 1)
    assert not sd, f"unmapped SD3 keys: {sorted(sd)[:5]}"
    return {prefix + k: v for k, v in out.items()}


def _sd3_block(sd: dict, out: dict, i: int, last: bool) -> None:
    src, x, c = f"transformer_blocks.{i}.", f"joint_blocks.{i}.x_block.", f"joint_blocks.{i}.context_block."
    for kind in ("weight", "bias"):
        out[f"{x}attn.qkv.{kind}"] = torch.cat([sd.pop(f"{src}attn.to_{p}.{kind}") for p in "qkv"])
        out[f"{c}attn.qkv.{kind}"] = torch.cat([sd.pop(f"{src}attn.add_{p}_proj.{kind}") for p in "qkv"])
        out[f"{x}attn.proj.{kind}"] = sd.pop(f"{src}attn.to_out.0.{kind}")
        out[f"{x}adaLN_modulation.1.{kind}"] = sd.pop(f"{src}norm1.linear.{kind}")
        context_mod = sd.pop(f"{src}norm1_context.linear.{kind}")
        out[f"{c}adaLN_modulation.1.{kind}"] = _swap_halves(context_mod) if last else context_mod
        out[f"{x}mlp.fc1.{kind}"] = sd.pop(f"{src}ff.net.0.proj.{kind}")
        out[f"{x}mlp.fc2.{kind}"] = sd.pop(f"{src}ff.net.2.{kind}")
        if not last:
            out[f"{c}attn.proj.{kind}"] = sd.pop(f"{src}attn.to_add_out.{kind}")
            out[f"{c}mlp.fc1.{kind}"] = sd.pop(f"{src}ff_context.net.0.proj.{kind}")
            out[f"{c}mlp.fc2.{kind}"] = sd.pop(f"{src}ff_context.net.2.{kind}")
        if f"{src}attn2.to_q.{kind}" in sd:
            out[f"{x}attn2.qkv.{kind}"] = torch.cat([sd.pop(f"{src}attn2.to_{p}.{kind}") for p in "qkv"])
            out[f"{x}attn2.proj.{kind}"] = sd.pop(f"{src}attn2.to_out.0.{kind}")
    for new, old in (("attn.norm_q", f"{x}attn.ln_q"), ("attn.norm_k", f"{x}attn.ln_k"),
                     ("attn.norm_added_q", f"{c}attn.ln_q"), ("attn.norm_added_k", f"{c}attn.ln_k"),
                     ("attn2.norm_q", f"{x}attn2.ln_q"), ("attn2.norm_k", f"{x}attn2.ln_k")):
        if f"{src}{new}.weight" in sd:
            out[f"{old}.weight"] = sd.pop(f"{src}{new}.weight")


FLUX_TOP = (("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
            ("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
            ("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
            ("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
            ("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"),
            ("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"),
            ("txt_in", "context_embedder"), ("img_in", "x_embedder"), ("final_layer.linear", "proj_out"))
FLUX_DOUBLE = (("img_mod.lin", "norm1.linear"), ("txt_mod.lin", "norm1_context.linear"),
               ("img_mlp.0", "ff.net.0.proj"), ("img_mlp.2", "ff.net.2"), ("txt_mlp.0", "ff_context.net.0.proj"),
               ("txt_mlp.2", "ff_context.net.2"), ("img_attn.proj", "attn.to_out.0"),
               ("txt_attn.proj", "attn.to_add_out"))
FLUX_NORMS = (("img_attn.norm.query_norm.scale", "attn.norm_q.weight"),
              ("img_attn.norm.key_norm.scale", "attn.norm_k.weight"),
              ("txt_attn.norm.query_norm.scale", "attn.norm_added_q.weight"),
              ("txt_attn.norm.key_norm.scale", "attn.norm_added_k.weight"))


def flux_to_original(sd: dict, prefix: str = "", pruned: bool = False) -> dict:
    """FluxTransformer2DModel keys -> BFL keys (``double_blocks`` / ``single_blocks``); BFL files have no prefix.
    ``pruned``: a model without modulation layers (Chroma's blocks)."""
    sd = dict(sd)
    out = {}
    for kind in ("weight", "bias"):
        for new, old in FLUX_TOP:
            if f"{old}.{kind}" in sd:
                out[f"{new}.{kind}"] = sd.pop(f"{old}.{kind}")
        if not pruned:
            out[f"final_layer.adaLN_modulation.1.{kind}"] = _swap_halves(sd.pop(f"norm_out.linear.{kind}"))
    doubles = {int(k.split(".")[1]) for k in sd if k.startswith("transformer_blocks.")}
    singles = {int(k.split(".")[1]) for k in sd if k.startswith("single_transformer_blocks.")}
    for i in sorted(doubles):
        src, dst = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}img_attn.qkv.{kind}"] = torch.cat([sd.pop(f"{src}attn.to_{p}.{kind}") for p in "qkv"])
            out[f"{dst}txt_attn.qkv.{kind}"] = torch.cat([sd.pop(f"{src}attn.add_{p}_proj.{kind}") for p in "qkv"])
            for new, old in FLUX_DOUBLE[2:] if pruned else FLUX_DOUBLE:  # the first two: img_mod / txt_mod
                out[f"{dst}{new}.{kind}"] = sd.pop(f"{src}{old}.{kind}")
        for new, old in FLUX_NORMS:
            out[dst + new] = sd.pop(src + old)
    for i in sorted(singles):
        src, dst = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for kind in ("weight", "bias"):
            parts = [sd.pop(f"{src}attn.to_{p}.{kind}") for p in "qkv"] + [sd.pop(f"{src}proj_mlp.{kind}")]
            out[f"{dst}linear1.{kind}"] = torch.cat(parts)
            out[f"{dst}linear2.{kind}"] = sd.pop(f"{src}proj_out.{kind}")
            if not pruned:
                out[f"{dst}modulation.lin.{kind}"] = sd.pop(f"{src}norm.linear.{kind}")
        out[f"{dst}norm.query_norm.scale"] = sd.pop(f"{src}attn.norm_q.weight")
        out[f"{dst}norm.key_norm.scale"] = sd.pop(f"{src}attn.norm_k.weight")
    assert not sd, f"unmapped Flux keys: {sorted(sd)[:5]}"
    return {prefix + k: v for k, v in out.items()}


def chroma_to_original(sd: dict, prefix: str = "") -> dict:
    """ChromaTransformer2DModel keys -> lodestones' / ComfyUI's keys: Flux's blocks without modulation layers, and
    the approximator (``distilled_guidance_layer``: ``layers.N.linear_1`` / ``linear_2`` are ``in_layer`` /
    ``out_layer``, ``norms.N.weight`` is ``norms.N.scale``), as ``convert_chroma_transformer_checkpoint_to_
    diffusers`` reads them."""
    sd = dict(sd)
    out = {}
    for key in [k for k in sd if k.startswith("distilled_guidance_layer.")]:
        new = key.replace(".linear_1.", ".in_layer.").replace(".linear_2.", ".out_layer.")
        out[new.removesuffix(".weight") + ".scale" if ".norms." in key else new] = sd.pop(key)
    return {**{prefix + k: v for k, v in out.items()}, **flux_to_original(sd, prefix, pruned=True)}


ZIMAGE_ATTENTION = (("to_out.0", "out"), ("norm_q", "q_norm"), ("norm_k", "k_norm"))


def zimage_to_original(sd: dict, prefix: str = "model.diffusion_model.") -> dict:
    """ZImageTransformer2DModel keys -> ComfyUI's (Lumina 2 NextDiT) keys, as in ``z_image_turbo_bf16.safetensors``:
    ``attention.qkv`` = to_q, to_k, to_v stacked; ``attention.out`` / ``q_norm`` / ``k_norm``; ``x_embedder`` and
    ``final_layer`` without the patch-size key."""
    sd, out = dict(sd), {}
    for key in [k for k in sd if k.endswith(".attention.to_q.weight")]:
        stem = key[: -len("to_q.weight")]
        out[stem + "qkv.weight"] = torch.cat([sd.pop(f"{stem}to_{p}.weight") for p in "qkv"])
        for new, old in ZIMAGE_ATTENTION:
            out[f"{stem}{old}.weight"] = sd.pop(f"{stem}{new}.weight")
    for key in list(sd):
        name = key.replace("all_x_embedder.2-1.", "x_embedder.").replace("all_final_layer.2-1.", "final_layer.")
        out[name] = sd.pop(key)
    return {prefix + k: v for k, v in out.items()}


def qwen3_to_comfy(sd: dict, prefix: str = "model.") -> dict:
    """Qwen3Model keys as ComfyUI's ``qwen_3_4b.safetensors`` holds them (transformers names under ``model.``)."""
    return {prefix + k: v for k, v in sd.items()}


FLUX2_TOP = (("img_in", "x_embedder"), ("txt_in", "context_embedder"),
             ("time_in.in_layer", "time_guidance_embed.timestep_embedder.linear_1"),
             ("time_in.out_layer", "time_guidance_embed.timestep_embedder.linear_2"),
             ("guidance_in.in_layer", "time_guidance_embed.guidance_embedder.linear_1"),
             ("guidance_in.out_layer", "time_guidance_embed.guidance_embedder.linear_2"),
             ("double_stream_modulation_img.lin", "double_stream_modulation_img.linear"),
             ("double_stream_modulation_txt.lin", "double_stream_modulation_txt.linear"),
             ("single_stream_modulation.lin", "single_stream_modulation.linear"), ("final_layer.linear", "proj_out"))
FLUX2_DOUBLE = (("img_attn.proj", "attn.to_out.0"), ("txt_attn.proj", "attn.to_add_out"),
                ("img_mlp.0", "ff.linear_in"), ("img_mlp.2", "ff.linear_out"), ("txt_mlp.0", "ff_context.linear_in"),
                ("txt_mlp.2", "ff_context.linear_out"), ("img_attn.norm.query_norm", "attn.norm_q"),
                ("img_attn.norm.key_norm", "attn.norm_k"), ("txt_attn.norm.query_norm", "attn.norm_added_q"),
                ("txt_attn.norm.key_norm", "attn.norm_added_k"))
FLUX2_SINGLE = (("linear1", "attn.to_qkv_mlp_proj"), ("linear2", "attn.to_out"), ("norm.query_norm", "attn.norm_q"),
                ("norm.key_norm", "attn.norm_k"))


def flux2_to_original(sd: dict, prefix: str = "") -> dict:
    """Flux2Transformer2DModel keys -> BFL's FLUX.2 keys (``flux-2-klein-4b.safetensors``), as
    ``convert_flux2_transformer_checkpoint_to_diffusers`` reads them: the double blocks' q, k, v stacked into
    ``qkv``, RMSNorm weights as ``scale``, ``final_layer.adaLN_modulation.1`` with its halves swapped back."""
    sd, out = dict(sd), {}

    def move(new: str, old: str) -> None:
        for kind in ("weight", "bias"):
            if f"{old}.{kind}" in sd:
                name = "scale" if new.endswith("_norm") else kind
                out[f"{new}.{name}"] = sd.pop(f"{old}.{kind}")

    for new, old in FLUX2_TOP:
        move(new, old)
    out["final_layer.adaLN_modulation.1.weight"] = _swap_halves(sd.pop("norm_out.linear.weight"))
    for i in sorted({int(k.split(".")[1]) for k in sd if k.startswith("transformer_blocks.")}):
        src, dst = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        out[f"{dst}img_attn.qkv.weight"] = torch.cat([sd.pop(f"{src}attn.to_{p}.weight") for p in "qkv"])
        out[f"{dst}txt_attn.qkv.weight"] = torch.cat([sd.pop(f"{src}attn.add_{p}_proj.weight") for p in "qkv"])
        for new, old in FLUX2_DOUBLE:
            move(dst + new, src + old)
    for i in sorted({int(k.split(".")[1]) for k in sd if k.startswith("single_transformer_blocks.")}):
        for new, old in FLUX2_SINGLE:
            move(f"single_blocks.{i}.{new}", f"single_transformer_blocks.{i}.{old}")
    assert not sd, f"unmapped FLUX.2 keys: {sorted(sd)[:5]}"
    return {prefix + k: v for k, v in out.items()}


def flux2_vae_to_bfl(sd: dict) -> dict:
    """AutoencoderKLFlux2 keys -> BFL's ``flux2-vae.safetensors`` keys: the LDM VAE's, with the quant convs inside
    the encoder / decoder and the latent BatchNorm's statistics as they are (``bn.running_mean``)."""
    out = {}
    for key, value in vae_to_ldm(sd, prefix="").items():
        if key.startswith("quant_conv."):
            key = "encoder." + key
        elif key.startswith("post_quant_conv."):
            key = "decoder." + key
        out[key] = value
    return out


def wan_vae_to_original(sd: dict, res_blocks: int) -> dict:
    """A diffusers AutoencoderKLWan / AutoencoderKLQwenImage state dict in Wan-AI's original names (ComfyUI's
    ``comfy/ldm/wan/vae.py`` WanVAE; ``qwen_image_vae.safetensors``, ``wan_2.1_vae.safetensors``), for any number of
    res blocks per level: tests/wan_original_layout.py's inverse (one helper for both families' files; the decoder
    has ``res_blocks + 1`` residual blocks per level)."""
    from wan_original_layout import wan_vae_to_original as to_original

    return to_original(sd, resnets=res_blocks + 1)


def qwenimage_to_original(sd: dict, prefix: str = "model.diffusion_model.") -> dict:
    """Qwen-Image's transformer as ComfyUI keeps it: diffusers' own names (ComfyUI's model uses them), prefixed."""
    return {prefix + k: v for k, v in sd.items()}


def qwen25_vl_to_comfy(sd: dict, prefix: str = "") -> dict:
    """transformers' Qwen2.5-VL names -> ComfyUI's ``qwen_2.5_vl_7b`` layout (``model.*``, ``visual.*``; ComfyUI's
    model has no lm_head, so none is written)."""
    out = {}
    for key, value in sd.items():
        if key.startswith("model.language_model."):
            out[prefix + "model." + key[len("model.language_model."):]] = value
        elif key.startswith("model.visual."):
            out[prefix + "visual." + key[len("model.visual."):]] = value
    return out


_KREA2_TOP = (("img_in.", "first."), ("time_embed.linear_1.", "tmlp.0."), ("time_embed.linear_2.", "tmlp.2."),
              ("time_mod_proj.", "tproj.1."), ("txt_in.norm.weight", "txtmlp.0.scale"),
              ("txt_in.linear_1.", "txtmlp.1."), ("txt_in.linear_2.", "txtmlp.3."), ("text_fusion.", "txtfusion."),
              ("transformer_blocks.", "blocks."), ("final_layer.linear.", "last.linear."),
              ("final_layer.norm.weight", "last.norm.scale"), ("final_layer.scale_shift_table", "last.modulation.lin"))
_KREA2_BLOCK = ((".attn.to_q.", ".attn.wq."), (".attn.to_k.", ".attn.wk."), (".attn.to_v.", ".attn.wv."),
                (".attn.to_out.0.", ".attn.wo."), (".attn.to_gate.", ".attn.gate."),
                (".attn.norm_q.weight", ".attn.qknorm.qnorm.scale"),
                (".attn.norm_k.weight", ".attn.qknorm.knorm.scale"),
                (".ff.", ".mlp."), (".norm1.weight", ".prenorm.scale"), (".norm2.weight", ".postnorm.scale"),
                (".scale_shift_table", ".mod.lin"))


def qwen3_vl_to_hf(sd: dict, prefix: str = "") -> dict:
    """transformers' Qwen3VLModel names -> the released Qwen3-VL checkpoint's (``model.language_model.*``,
    ``model.visual.*``; the tied lm_head is not stored)."""
    return {prefix + "model." + k: v for k, v in sd.items()}


def krea2_to_original(sd: dict, prefix: str = "") -> dict:
    """diffusers' Krea2Transformer2DModel -> krea-ai/krea-2's SingleStreamDiT names (ComfyUI's, the trainers'): the
    inverse of diffusers' ``convert_krea2_transformer_checkpoint_to_diffusers`` (a block's six modulation vectors
    flattened into one)."""
    out = {}
    for key, value in sd.items():
        new = next((o + key[len(d):] for d, o in _KREA2_TOP if key.startswith(d)), key)
        for diffusers_name, original in _KREA2_BLOCK:
            new = new.replace(diffusers_name, original)
        if new.startswith("blocks.") and new.endswith(".mod.lin"):
            value = value.reshape(-1)
        out[prefix + new] = value
    return out


def kandinsky5_to_original(sd: dict, prefix: str = "model.diffusion_model.") -> dict:
    """Kandinsky 5's transformer as Kandinsky Lab's checkpoints and ComfyUI keep it: diffusers' own names, prefixed."""
    return {prefix + k: v for k, v in sd.items()}


# Lumina 2 (Lumina2Transformer2DModel -> ComfyUI's NextDiT / Alpha-VLLM's names): per block, diffusers name -> original
LUMINA2_BLOCK = (("attn.to_out.0", "attention.out"), ("attn.norm_q", "attention.q_norm"),
                 ("attn.norm_k", "attention.k_norm"), ("feed_forward.linear_1", "feed_forward.w1"),
                 ("feed_forward.linear_2", "feed_forward.w2"), ("feed_forward.linear_3", "feed_forward.w3"),
                 ("norm1.linear", "adaLN_modulation.1"), ("norm1.norm", "attention_norm1"),
                 ("norm1", "attention_norm1"), ("norm2", "attention_norm2"))
LUMINA2_TOP = (("time_caption_embed.timestep_embedder.linear_1", "t_embedder.mlp.0"),
               ("time_caption_embed.timestep_embedder.linear_2", "t_embedder.mlp.2"),
               ("time_caption_embed.caption_embedder", "cap_embedder"),
               ("norm_out.linear_1", "final_layer.adaLN_modulation.1"), ("norm_out.linear_2", "final_layer.linear"))


def lumina2_to_original(sd: dict, prefix: str = "") -> dict:
    """Lumina2Transformer2DModel keys -> ComfyUI's Lumina 2 ``NextDiT`` keys (``lumina_2_model_bf16.safetensors``), as
    ``convert_lumina2_to_diffusers`` reads them: ``attention.qkv`` = to_q, to_k, to_v stacked (grouped-query: k and
    v have the KV heads' rows), ``attention.out``, ``feed_forward.w1/w2/w3``, ``adaLN_modulation.1``,
    ``attention_norm1/2``, ``t_embedder``, ``cap_embedder``, ``final_layer``."""
    sd, out = dict(sd), {}
    for key in [k for k in sd if k.endswith(".attn.to_q.weight")]:
        stem = key[: -len("attn.to_q.weight")]
        out[stem + "attention.qkv.weight"] = torch.cat([sd.pop(f"{stem}attn.to_{p}.weight") for p in "qkv"])
    for key in list(sd):
        head, _, rest = key.partition(".")
        if head in ("layers", "noise_refiner", "context_refiner"):
            index, _, name = rest.partition(".")
            out[f"{head}.{index}.{_rename(name, dict(LUMINA2_BLOCK))}"] = sd.pop(key)
        else:
            out[_rename(key, dict(LUMINA2_TOP))] = sd.pop(key)
    return {prefix + k: v for k, v in out.items()}


def gemma2_to_comfy(sd: dict, prefix: str = "model.") -> dict:
    """Gemma2Model keys as ComfyUI's ``gemma_2_2b_fp16.safetensors`` holds them (transformers' names under
    ``model.``)."""
    return {prefix + k: v for k, v in sd.items()}


# diffusers' AuraFlowTransformer2DModel -> fal's / ComfyUI's MMDiT names (comfy/ldm/aura/mmdit.py), read backwards from
# convert_auraflow_transformer_checkpoint_to_diffusers
_AURA_TOP = (("time_step_proj.linear_1", "t_embedder.mlp.0"), ("time_step_proj.linear_2", "t_embedder.mlp.2"),
             ("context_embedder", "cond_seq_linear"), ("pos_embed.proj", "init_x_linear"), ("proj_out", "final_linear"),
             ("pos_embed.pos_embed", "positional_encoding"), ("register_tokens", "register_tokens"))
_AURA_FF = (("ff.linear_1", "c_fc1"), ("ff.linear_2", "c_fc2"), ("ff.out_projection", "c_proj"))
_AURA_JOINT = (("attn.to_q", "attn.w2q"), ("attn.to_k", "attn.w2k"), ("attn.to_v", "attn.w2v"),
               ("attn.to_out.0", "attn.w2o"), ("attn.add_q_proj", "attn.w1q"), ("attn.add_k_proj", "attn.w1k"),
               ("attn.add_v_proj", "attn.w1v"), ("attn.to_add_out", "attn.w1o"), ("norm1.linear", "modX.1"),
               ("norm1_context.linear", "modC.1"), *((f"{d}", f"mlpX.{o}") for d, o in _AURA_FF),
               *((d.replace("ff.", "ff_context."), f"mlpC.{o}") for d, o in _AURA_FF))
_AURA_SINGLE = (("attn.to_q", "attn.w1q"), ("attn.to_k", "attn.w1k"), ("attn.to_v", "attn.w1v"),
                ("attn.to_out.0", "attn.w1o"), ("norm1.linear", "modCX.1"), *((d, f"mlp.{o}") for d, o in _AURA_FF))


def auraflow_to_original(sd: dict, prefix: str = "") -> dict:
    """diffusers' AuraFlowTransformer2DModel -> the original MMDiT's names (``double_layers``, ``single_layers``,
    ``modF.1`` with shift and scale swapped back)."""
    out = {}
    for key, value in sd.items():
        if key == "norm_out.linear.weight":
            out[prefix + "modF.1.weight"] = _swap_halves(value)
            continue
        new = None
        for stem, table, original in (("joint_transformer_blocks.", _AURA_JOINT, "double_layers."),
                                      ("single_transformer_blocks.", _AURA_SINGLE, "single_layers.")):
            if key.startswith(stem):
                index, _, rest = key[len(stem):].partition(".")
                module, _, leaf = rest.rpartition(".")
                new = f"{original}{index}.{dict(table)[module]}.{leaf}"
        if new is None:
            module, _, leaf = key.rpartition(".")
            top = dict(_AURA_TOP)
            new = top[key] if key in top else f"{top[module]}.{leaf}"
        out[prefix + new] = value
    return out


_SANA_TOP = (("patch_embed.proj.", "x_embedder.proj."),
             ("time_embed.emb.timestep_embedder.linear_1.", "t_embedder.mlp.0."),
             ("time_embed.emb.timestep_embedder.linear_2.", "t_embedder.mlp.2."), ("time_embed.linear.", "t_block.1."),
             ("caption_projection.linear_1.", "y_embedder.y_proj.fc1."),
             ("caption_projection.linear_2.", "y_embedder.y_proj.fc2."), ("caption_norm.", "attention_y_norm."),
             ("proj_out.", "final_layer.linear."), ("scale_shift_table", "final_layer.scale_shift_table"))
_SANA_BLOCK = (("attn1.to_out.0.", "attn.proj."), ("attn2.to_q.", "cross_attn.q_linear."),
               ("attn2.to_out.0.", "cross_attn.proj."), ("ff.conv_inverted.", "mlp.inverted_conv.conv."),
               ("ff.conv_depth.", "mlp.depth_conv.conv."), ("ff.conv_point.", "mlp.point_conv.conv."),
               ("scale_shift_table", "scale_shift_table"))


def sana_to_original(sd: dict, prefix: str = "") -> dict:
    """diffusers' SanaTransformer2DModel (Sana 1.0) -> NVlabs Sana's original names (``x_embedder``, ``blocks.N.attn.
    qkv``, ``cross_attn.kv_linear``, ``mlp.inverted_conv.conv``...): the inverse of diffusers'
    ``convert_sana_transformer_to_diffusers`` (self-attention q/k/v fused, cross-attention k/v fused). The original's
    ``pos_embed`` and ``y_embedder.y_embedding``, which the converter drops, are not written."""
    out = {}
    for key, value in sd.items():
        if not key.startswith("transformer_blocks."):
            old = next(o + key[len(d):] for d, o in _SANA_TOP if key.startswith(d))
            out[prefix + old] = value
            continue
        block, rest = key[len("transformer_blocks."):].split(".", 1)
        stem = f"{prefix}blocks.{block}."
        if rest in ("attn1.to_k.weight", "attn1.to_v.weight", "attn2.to_v.weight", "attn2.to_v.bias"):
            continue
        if rest == "attn1.to_q.weight":
            out[stem + "attn.qkv.weight"] = torch.cat([sd[f"transformer_blocks.{block}.attn1.to_{n}.weight"]
                                                       for n in "qkv"])
        elif rest.startswith("attn2.to_k."):
            leaf = rest.rsplit(".", 1)[1]
            out[stem + "cross_attn.kv_linear." + leaf] = torch.cat(
                [sd[f"transformer_blocks.{block}.attn2.to_{n}.{leaf}"] for n in "kv"])
        else:
            out[stem + next(o + rest[len(d):] for d, o in _SANA_BLOCK if rest.startswith(d))] = value
    return out


_DC_AE_TOP = (("encoder.conv_in.", "encoder.project_in.conv."),
              ("encoder.conv_out.", "encoder.project_out.main.op_list.0.conv."),
              ("decoder.conv_in.", "decoder.project_in.main.conv."),
              ("decoder.norm_out.", "decoder.project_out.op_list.0."),
              ("decoder.conv_out.", "decoder.project_out.op_list.2.conv."))
_DC_AE_BLOCK = (("conv1.", "main.conv1.conv."), ("conv2.", "main.conv2.conv."), ("norm.", "main.conv2.norm."),
                ("attn.to_qkv_multiscale.0.proj_in.", "context_module.main.aggreg.0.0."),
                ("attn.to_qkv_multiscale.0.proj_out.", "context_module.main.aggreg.0.1."),
                ("attn.to_out.", "context_module.main.proj.conv."),
                ("attn.norm_out.", "context_module.main.proj.norm."),
                ("conv_out.conv_inverted.", "local_module.main.inverted_conv.conv."),
                ("conv_out.conv_depth.", "local_module.main.depth_conv.conv."),
                ("conv_out.conv_point.", "local_module.main.point_conv.conv."),
                ("conv_out.norm.", "local_module.main.point_conv.norm."))


def dc_ae_to_original(sd: dict) -> dict:
    """diffusers' AutoencoderDC -> mit-han-lab/efficientvit's DCAE names (``encoder.stages.S.op_list.I.main...``,
    ``context_module.main.qkv.conv``; the Sana DC-AE's ``model.safetensors``), for encoders with a ``conv``
    down-sampling and decoders with an interpolating up-sampling (Sana's): the inverse of diffusers'
    ``convert_autoencoder_dc_checkpoint_to_diffusers`` (q/k/v fused into one 1x1 conv, 1x1 convs 4-D again)."""
    out = {}
    for key, value in sd.items():
        top = next((o + key[len(d):] for d, o in _DC_AE_TOP if key.startswith(d)), None)
        if top is not None:
            out[top] = value
            continue
        part, kind, stage, index, rest = key.split(".", 4)
        stem = f"{part}.stages.{stage}.op_list.{index}."
        if rest in ("attn.to_k.weight", "attn.to_v.weight"):
            continue
        if rest == "attn.to_q.weight":
            qkv = torch.cat([sd[f"{part}.{kind}.{stage}.{index}.attn.to_{n}.weight"] for n in "qkv"])
            out[stem + "context_module.main.qkv.conv.weight"] = qkv[:, :, None, None]
        elif rest.startswith("conv."):  # the down- (a conv) or up-sampling block (an interpolation and a conv)
            out[stem + ("main.conv." if part == "encoder" else "main.conv.conv.") + rest[len("conv."):]] = value
        else:
            new = next(o + rest[len(d):] for d, o in _DC_AE_BLOCK if rest.startswith(d))
            out[stem + new] = value[:, :, None, None] if rest == "attn.to_out.weight" else value
    return out
