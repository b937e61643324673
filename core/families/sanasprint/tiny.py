"""The built-in tiny Sana Sprint pipeline ("tiny-sanasprint").

The tiny Sana's text encoder, tokenizer and autoencoder (``sana/tiny.py``), with a Sprint transformer: Sana's
blocks plus the guidance embedding and QK RMS norm across heads (real: Sana 0.6B / 1.6B widths), and the sCM
scheduler.
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, tiny_gemma2_encoder, tiny_gemma_tokenizer
from ..sana.tiny import tiny_dc_ae, tiny_transformer


def build(seed: int = TINY_SEED):
    from diffusers import SanaSprintPipeline, SCMScheduler

    tokenizer = tiny_gemma_tokenizer()
    transformer = tiny_transformer(seed, qk_norm="rms_norm_across_heads", guidance_embeds=True)
    return SanaSprintPipeline(tokenizer=tokenizer, text_encoder=tiny_gemma2_encoder(len(tokenizer), 16, seed),
                              vae=tiny_dc_ae(seed), transformer=transformer, scheduler=SCMScheduler())
