"""The built-in tiny Sana pipeline ("tiny-sana").

The transformer keeps Sana's layout (linear self-attention, cross-attention to the caption, GLUMBConv Mix-FFN,
patch 1) at 16 wide (real: 1152 or 2240, 28 or 20 blocks); the text encoder is a 2-layer Gemma 2 (real: Gemma 2
2B IT) with an in-memory Gemma tokenizer whose vocab makes each word of the pipeline's complex human instruction
one token; the autoencoder is a two-level ``AutoencoderDC`` (real: 32x, 32 channels). Its scheduler is Sana's:
DPM-Solver++ on flow sigmas, flow_shift 3.0.
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, seeded, tiny_gemma2_encoder, tiny_gemma_tokenizer


def tiny_dc_ae(seed: int = TINY_SEED):
    from diffusers import AutoencoderDC

    seeded(seed)
    return AutoencoderDC(
        in_channels=3, latent_channels=4, attention_head_dim=2, encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"), encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8), encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1), downsample_block_type="conv",
        upsample_block_type="interpolate", decoder_norm_types="rms_norm", decoder_act_fns="silu",
        scaling_factor=0.41407,
    ).eval()


def tiny_transformer(seed: int, **extra):
    """Sana's transformer at 16 wide, 2 layers (``extra``: Sana Sprint's guidance embedder and QK norm)."""
    from diffusers import SanaTransformer2DModel

    seeded(seed)
    return SanaTransformer2DModel(
        patch_size=1, in_channels=4, out_channels=4, num_layers=2, num_attention_heads=2, attention_head_dim=8,
        num_cross_attention_heads=2, cross_attention_head_dim=8, cross_attention_dim=16, caption_channels=16,
        sample_size=32, **extra,
    ).eval()


def build(seed: int = TINY_SEED):
    from diffusers import DPMSolverMultistepScheduler, SanaPipeline

    tokenizer = tiny_gemma_tokenizer()
    transformer = tiny_transformer(seed)
    scheduler = DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction")
    return SanaPipeline(tokenizer=tokenizer, text_encoder=tiny_gemma2_encoder(len(tokenizer), 16, seed),
                        vae=tiny_dc_ae(seed), transformer=transformer, scheduler=scheduler)
