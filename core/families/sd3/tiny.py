"""The built-in tiny SD3 pipeline ("tiny-sd3")."""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, flow_vae, seeded, tiny_clip_text_encoder, tiny_clip_tokenizer


def build(seed: int = TINY_SEED, latent_channels: int = 4):
    """SD3 layout: an MMDiT transformer, two projected CLIP encoders, no T5 (as SD3 allows).

    ``latent_channels=16`` is the real SD3's count, which diffusers' SD3 inpainting pipeline insists on
    (16 or 33); the built-in keeps 4, which the shipped trainer-made test LoRAs were made for."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tokenizer = tiny_clip_tokenizer()
    seeded(seed)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=latent_channels, num_layers=2, attention_head_dim=8,
        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64,
        out_channels=latent_channels,
    ).eval()
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=flow_vae(latent_channels, seed),
        text_encoder=tiny_clip_text_encoder(len(tokenizer), projection=True, seed=seed), tokenizer=tokenizer,
        text_encoder_2=tiny_clip_text_encoder(len(tokenizer), projection=True, seed=seed + 1),
        tokenizer_2=tiny_clip_tokenizer(), text_encoder_3=None, tokenizer_3=None,
    )


