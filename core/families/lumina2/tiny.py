"""The built-in tiny Lumina 2 pipeline ("tiny-lumina2").

The transformer keeps Lumina Image 2.0's layout (1 noise refiner, 1 context refiner, then the main layers;
grouped-query attention with fewer KV heads; SwiGLU; patch 2) at 32 wide (real: 2304, 2 + 2 refiners and 26
layers); the text encoder is a 2-layer Gemma 2 (real: Gemma 2 2B) with an in-memory Gemma tokenizer. The
pipeline fixes the VAE scale factor at 8, so the VAE has four levels (FLUX.1's latent scaling and shift).
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, flux_vae8, seeded, tiny_gemma2_encoder, tiny_gemma_tokenizer


def build(seed: int = TINY_SEED):
    from diffusers import FlowMatchEulerDiscreteScheduler, Lumina2Pipeline, Lumina2Transformer2DModel

    tokenizer = tiny_gemma_tokenizer()
    seeded(seed)
    transformer = Lumina2Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, hidden_size=32, num_layers=2, num_refiner_layers=1,
        num_attention_heads=2, num_kv_heads=1, multiple_of=16, ffn_dim_multiplier=None, norm_eps=1e-5,
        scaling_factor=1.0, axes_dim_rope=(8, 4, 4), cap_feat_dim=16,
    ).eval()
    return Lumina2Pipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(),
                           vae=flux_vae8(4, seed), text_encoder=tiny_gemma2_encoder(len(tokenizer), 16, seed),
                           tokenizer=tokenizer)
