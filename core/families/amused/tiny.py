"""The built-in tiny aMUSEd pipeline ("tiny-amused")."""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, seeded, tiny_clip_text_encoder, tiny_clip_tokenizer


def build(seed: int = TINY_SEED):
    """aMUSEd layout: a UVit2D transformer over VQ image tokens and a projected CLIP text encoder."""
    from diffusers import AmusedPipeline, AmusedScheduler, UVit2DModel, VQModel

    tokenizer = tiny_clip_tokenizer()
    seeded(seed)
    transformer = UVit2DModel(
        hidden_size=32, use_bias=False, hidden_dropout=0.0, cond_embed_dim=32, micro_cond_encode_dim=2,
        micro_cond_embed_dim=10, encoder_hidden_size=32, vocab_size=32, codebook_size=8, in_channels=8,
        block_out_channels=32, num_res_blocks=1, downsample=True, upsample=True, block_num_heads=2,
        num_hidden_layers=2, num_attention_heads=2, attention_dropout=0.0, intermediate_size=32,
        layer_norm_eps=1e-6, ln_elementwise_affine=True,
    ).eval()
    seeded(seed)
    vqvae = VQModel(
        act_fn="silu", block_out_channels=[8, 8], down_block_types=["DownEncoderBlock2D"] * 2, in_channels=3,
        latent_channels=8, layers_per_block=1, norm_num_groups=8, num_vq_embeddings=8, out_channels=3,
        sample_size=8, up_block_types=["UpDecoderBlock2D"] * 2, mid_block_add_attention=False,
        lookup_from_codebook=True,
    ).eval()
    return AmusedPipeline(vqvae=vqvae, tokenizer=tokenizer, transformer=transformer, scheduler=AmusedScheduler(
        mask_token_id=31), text_encoder=tiny_clip_text_encoder(len(tokenizer), projection=True, seed=seed))
