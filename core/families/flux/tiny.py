"""The built-in tiny Flux pipeline ("tiny-flux")."""

from __future__ import annotations

from ...models.tiny_parts import (
    TINY_SEED,
    flow_vae,
    seeded,
    tiny_clip_text_encoder,
    tiny_clip_tokenizer,
    tiny_t5_encoder,
    tiny_t5_tokenizer,
)


def build(seed: int = TINY_SEED):
    """Flux layout: double- and single-stream transformer blocks, a CLIP and a T5 text encoder."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tokenizer, t5_tokenizer = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    seeded(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=2, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
    ).eval()
    return FluxPipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=flow_vae(1, seed),
        text_encoder=tiny_clip_text_encoder(len(tokenizer), seed=seed), tokenizer=tokenizer,
        text_encoder_2=tiny_t5_encoder(len(t5_tokenizer), seed=seed), tokenizer_2=t5_tokenizer,
    )


