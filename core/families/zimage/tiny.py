"""The built-in tiny Z-Image pipeline ("tiny-zimage"): Tongyi-MAI Z-Image (Turbo / Base) at a few hundred KB.

Real classes, seeded weights, the tokenizer built in memory:

* ``transformer``: diffusers' ``ZImageTransformer2DModel``, dim 32, 2 heads x 16 (RoPE axes [8, 4, 4]), ``layers``
  2, ``noise_refiner`` 2 and ``context_refiner`` 2 (the real model: 30 / 2 / 2 at dim 3840, 30 heads x 128, axes
  [32, 48, 48]), SwiGLU feed-forward 85 wide, caption width 32, 16 latent channels, patch 2. Caption positions run
  along RoPE axis 0, whose length (1024) must exceed the prompt length (prompts are padded to 512 tokens).
  diffusers leaves ``x_pad_token`` / ``cap_pad_token`` uninitialised (``torch.empty``); they are seeded here.
* ``text_encoder``: transformers' ``Qwen3Model``, hidden 32, 2 layers, 2 heads x 16 with 1 KV head (grouped-query
  like the real Qwen3-4B: 36 layers, hidden 2560, 32 heads, 8 KV heads); the pipeline reads ``hidden_states[-2]``.
* ``tokenizer``: ``Qwen2Tokenizer`` from a byte-level vocab (every byte a token, no merges) with Qwen's special
  tokens and a chat template that renders what Qwen3's does for one user message (the pipeline wraps the prompt
  as ``<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n``).
* ``vae``: a four-level ``AutoencoderKL`` (8x down, 16 latent channels, the FLUX.1 VAE's scaling 0.3611 and shift
  0.1159), so 64x64 pixels are 8x8 latents and 16 image tokens.
* ``scheduler``: ``FlowMatchEulerDiscreteScheduler`` with Z-Image Turbo's config (shift 3, no dynamic shifting);
  ``variant="base"`` takes Z-Image (Base)'s shift 6 instead. Nothing else tells Turbo and Base apart.

The trainer-made test LoRAs (tests/fixtures/trainers/zimage/) were made for exactly these shapes.
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, seeded, tiny_qwen3_encoder, tiny_qwen_tokenizer

TRANSFORMER = {"all_patch_size": (2,), "all_f_patch_size": (1,), "in_channels": 16, "dim": 32, "n_layers": 2,
               "n_refiner_layers": 2, "n_heads": 2, "n_kv_heads": 2, "norm_eps": 1e-5, "qk_norm": True,
               "cap_feat_dim": 32, "rope_theta": 256.0, "t_scale": 1000.0, "axes_dims": [8, 4, 4],
               "axes_lens": [1024, 64, 64]}
SHIFTS = {"turbo": 3.0, "base": 6.0}  # the FlowMatch shift of each release's scheduler_config


def tiny_transformer(seed: int = TINY_SEED):
    import torch
    from diffusers import ZImageTransformer2DModel

    seeded(seed)
    model = ZImageTransformer2DModel(**TRANSFORMER).eval()
    generator = torch.Generator().manual_seed(seed + 17)
    with torch.no_grad():
        for name in ("x_pad_token", "cap_pad_token"):
            pad = getattr(model, name)
            pad.copy_(torch.randn(pad.shape, generator=generator) * 0.02)
    return model


def tiny_flux_vae(seed: int = TINY_SEED):
    from diffusers import AutoencoderKL

    seeded(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 8, 16, 16),
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         layers_per_block=1, latent_channels=16, norm_num_groups=4, sample_size=64,
                         use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.3611,
                         shift_factor=0.1159).eval()


def build(seed: int = TINY_SEED, variant: str = "turbo"):
    """Z-Image layout: a single-stream DiT with noise/context refiners, a Qwen3 text encoder, the FLUX.1 VAE."""
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline

    tokenizer = tiny_qwen_tokenizer()
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=SHIFTS[variant],
                                                use_dynamic_shifting=False)
    return ZImagePipeline(scheduler=scheduler, vae=tiny_flux_vae(seed),
                          text_encoder=tiny_qwen3_encoder(len(tokenizer), seed=seed), tokenizer=tokenizer,
                          transformer=tiny_transformer(seed))
