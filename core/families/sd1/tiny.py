"""The built-in tiny SD 1.x pipeline ("tiny-sd")."""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, seeded, tiny_clip_text_encoder, tiny_clip_tokenizer, tiny_vae


def tiny_sd_unet(cross_attention_dim: int = 32, seed: int = TINY_SEED):
    """An SD 1.x-shaped UNet: 3 cross-attention down blocks + 1 plain, 2 layers each, as the real one."""
    from diffusers import UNet2DConditionModel

    seeded(seed)
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


def build(seed: int = TINY_SEED):
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


