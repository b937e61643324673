"""The built-in tiny Sana Sprint pipeline ("tiny-sanasprint").

The tiny Sana's text encoder, tokenizer and autoencoder (``sana/tiny.py``), with a Sprint transformer: Sana's
blocks plus the guidance embedding and QK RMS norm across heads (real: Sana 0.6B / 1.6B widths), and the sCM
scheduler.
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, seeded, tiny_gemma2_encoder, tiny_gemma_tokenizer
from ..sana.tiny import tiny_dc_ae


def build(seed: int = TINY_SEED):
    from diffusers import SanaSprintPipeline, SanaTransformer2DModel, SCMScheduler

    tokenizer = tiny_gemma_tokenizer()
    seeded(seed)
    transformer = SanaTransformer2DModel(
        patch_size=1, in_channels=4, out_channels=4, num_layers=2, num_attention_heads=2, attention_head_dim=8,
        num_cross_attention_heads=2, cross_attention_head_dim=8, cross_attention_dim=16, caption_channels=16,
        sample_size=32, qk_norm="rms_norm_across_heads", guidance_embeds=True,
    ).eval()
    return SanaSprintPipeline(tokenizer=tokenizer, text_encoder=tiny_gemma2_encoder(len(tokenizer), 16, seed),
                              vae=tiny_dc_ae(seed), transformer=transformer, scheduler=SCMScheduler())
