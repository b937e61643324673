"""Built-in tiny models: real diffusers/transformers classes with tiny configs and fixed seeds.

They are structurally faithful (an SD 1.x UNet has four down blocks, two layers per block,
attention where SD 1.x has it), so block weights, kohya key names and every LoRA code path
meet the same module names as on a full-size model, at a few megabytes.
"""

from __future__ import annotations

import torch

TINY_SEED = 0
# Byte-level BPE vocab with no merges: every byte is a token, so any prompt tokenizes offline.
_SPECIAL = ("<|startoftext|>", "<|endoftext|>")


def _bytes_to_unicode() -> list[str]:
    # GPT-2 / CLIP byte-to-printable-character table.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tiny_clip_tokenizer():
    """A CLIPTokenizer built in memory: byte tokens, byte+</w> tokens, start and end tokens."""
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + list(_SPECIAL)
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_clip_text_encoder(vocab_size: int, hidden: int = 32, projection: bool = False, seed: int = TINY_SEED):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        projection_dim=hidden,
        num_attention_heads=4,
        num_hidden_layers=2,
        layer_norm_eps=1e-5,
        vocab_size=vocab_size,
        max_position_embeddings=77,
        hidden_act="gelu",
    )
    torch.manual_seed(seed)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(config).eval()


def tiny_sd_unet(cross_attention_dim: int = 32, seed: int = TINY_SEED):
    """An SD 1.x-shaped UNet: 3 cross-attention down blocks + 1 plain, 2 layers each, as the real one."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=2,
        norm_num_groups=8,
    ).eval()


def tiny_vae(seed: int = TINY_SEED):
    """A four-level VAE (8x downscale, 4 latent channels), like SD's."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    ).eval()


def tiny_sd1_pipeline(seed: int = TINY_SEED):
    """A complete StableDiffusionPipeline (SD 1.x layout) that runs 64x64 in well under a second."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    tokenizer = tiny_clip_tokenizer()
    return StableDiffusionPipeline(
        vae=tiny_vae(seed),
        text_encoder=tiny_clip_text_encoder(len(tokenizer), seed=seed),
        tokenizer=tokenizer,
        unet=tiny_sd_unet(seed=seed),
        scheduler=DDIMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


tiny_sd_pipeline = tiny_sd1_pipeline  # the name the README and tests use


def tiny_t5_tokenizer():
    """A T5 tokenizer from an in-memory Unigram vocab (letters and a few words), no files needed."""
    from transformers import T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>", "▁"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces += [f"▁{w}" for w in ("a", "the", "of", "photo", "cat", "lighthouse")]
    vocab = [(p, -float(i)) for i, p in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0, unk_id=2)


def tiny_t5_encoder(vocab_size: int, seed: int = TINY_SEED):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5EncoderModel(config).eval()


def _flow_vae(latent_channels: int, seed: int):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8, 8),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, latent_channels=latent_channels, norm_num_groups=4,
                         use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                         scaling_factor=1.5035).eval()


def tiny_sdxl_pipeline(seed: int = TINY_SEED):
    """SDXL layout: plain + two cross-attention down blocks, two CLIP text encoders (the 2nd projected)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32, 32), layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2), attention_head_dim=(2, 4, 4), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=8,
    ).eval()
    return StableDiffusionXLPipeline(
        vae=tiny_vae(seed), unet=unet,
        text_encoder=tiny_clip_text_encoder(len(tokenizer), seed=seed), tokenizer=tokenizer,
        text_encoder_2=tiny_clip_text_encoder(len(tokenizer), projection=True, seed=seed + 1),
        tokenizer_2=tiny_clip_tokenizer(),
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         timestep_spacing="leading", steps_offset=1),
        force_zeros_for_empty_prompt=True,
    )


def tiny_sd3_pipeline(seed: int = TINY_SEED, latent_channels: int = 4):
    """SD3 layout: an MMDiT transformer, two projected CLIP encoders, no T5 (as SD3 allows).

    ``latent_channels=16`` is the real SD3's count, which diffusers' SD3 inpainting pipeline insists on
    (16 or 33); the built-in keeps 4, which the shipped trainer-made test LoRAs were made for."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=latent_channels, num_layers=2, attention_head_dim=8,
        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64,
        out_channels=latent_channels,
    ).eval()
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=_flow_vae(latent_channels, seed),
        text_encoder=tiny_clip_text_encoder(len(tokenizer), projection=True, seed=seed), tokenizer=tokenizer,
        text_encoder_2=tiny_clip_text_encoder(len(tokenizer), projection=True, seed=seed + 1),
        tokenizer_2=tiny_clip_tokenizer(), text_encoder_3=None, tokenizer_3=None,
    )


def tiny_flux_pipeline(seed: int = TINY_SEED):
    """Flux layout: double- and single-stream transformer blocks, a CLIP and a T5 text encoder."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tokenizer, t5_tokenizer = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=2, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
    ).eval()
    return FluxPipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=_flow_vae(1, seed),
        text_encoder=tiny_clip_text_encoder(len(tokenizer), seed=seed), tokenizer=tokenizer,
        text_encoder_2=tiny_t5_encoder(len(t5_tokenizer), seed=seed), tokenizer_2=t5_tokenizer,
    )


def tiny_amused_pipeline(seed: int = TINY_SEED):
    """aMUSEd layout: a UVit2D transformer over VQ image tokens and a projected CLIP text encoder."""
    from diffusers import AmusedPipeline, AmusedScheduler, UVit2DModel, VQModel

    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(seed)
    transformer = UVit2DModel(
        hidden_size=32, use_bias=False, hidden_dropout=0.0, cond_embed_dim=32, micro_cond_encode_dim=2,
        micro_cond_embed_dim=10, encoder_hidden_size=32, vocab_size=32, codebook_size=8, in_channels=8,
        block_out_channels=32, num_res_blocks=1, downsample=True, upsample=True, block_num_heads=2,
        num_hidden_layers=2, num_attention_heads=2, attention_dropout=0.0, intermediate_size=32,
        layer_norm_eps=1e-6, ln_elementwise_affine=True,
    ).eval()
    torch.manual_seed(seed)
    vqvae = VQModel(
        act_fn="silu", block_out_channels=[8, 8], down_block_types=["DownEncoderBlock2D"] * 2, in_channels=3,
        latent_channels=8, layers_per_block=1, norm_num_groups=8, num_vq_embeddings=8, out_channels=3,
        sample_size=8, up_block_types=["UpDecoderBlock2D"] * 2, mid_block_add_attention=False,
        lookup_from_codebook=True,
    ).eval()
    return AmusedPipeline(vqvae=vqvae, tokenizer=tokenizer, transformer=transformer, scheduler=AmusedScheduler(
        mask_token_id=31), text_encoder=tiny_clip_text_encoder(len(tokenizer), projection=True, seed=seed))
