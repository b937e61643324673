"""The built-in tiny SDXL pipeline ("tiny-sdxl")."""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, seeded, tiny_clip_text_encoder, tiny_clip_tokenizer, tiny_vae


def build(seed: int = TINY_SEED):
    """SDXL layout: plain + two cross-attention down blocks, two CLIP text encoders (the 2nd projected)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tokenizer = tiny_clip_tokenizer()
    seeded(seed)
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


