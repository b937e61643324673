"""The built-in tiny Wan pipelines: Wan 2.1 T2V ("tiny-wan") and I2V, Wan 2.2 A14B T2V / I2V with two experts, and
Wan 2.2 TI2V-5B.

Every variant: ``WanTransformer3DModel`` with patch (1, 2, 2), 2 heads x 16 = inner dim 32, ffn 64, 2 blocks
(``blocks.0``, ``blocks.1``), text_dim 32, freq_dim 256, cross-attention norm, q/k RMS norm across heads (real: 12 /
40 / 24 heads x 128, dim 1536 / 5120 / 3072, 30 / 40 / 30 blocks, text_dim 4096). Wan 2.1 I2V: 36 input channels
(16 noise + 4 mask + 16 image latents), ``image_dim`` + ``add_k_proj`` / ``add_v_proj`` (original ``k_img`` /
``v_img``), a tiny CLIP vision encoder; Wan 2.2 A14B: ``transformer`` (high noise) and ``transformer_2`` (low noise,
seeded ``seed + 1`` so the experts differ), ``boundary_ratio`` 0.875 (T2V) / 0.9 (I2V); TI2V-5B: 48 latent
channels, the 2.2 VAE (16x spatial), ``expand_timesteps``. Text encoder: ``UMT5EncoderModel`` (d_model 32, 2 layers,
gated-gelu) with the in-memory T5 tokenizer; VAE: ``AutoencoderKLWan`` base_dim 8 (8x spatial, 4x temporal);
scheduler: UniPC with flow sigmas, flow_shift 3.0 (the Wan-AI diffusers repos' scheduler). Sizes: multiples of 16
(TI2V-5B: 32), num_frames 4k + 1. The same shapes made the trainer fixtures (tests/fixtures/trainers/wan/).
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, seeded, tiny_t5_tokenizer, wan_vae

VARIANTS = ("t2v", "i2v", "t2v22", "i2v22", "ti2v5b")
INNER = 32  # 2 heads x 16
TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, text_dim=32, freq_dim=256,
                   ffn_dim=64, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                   rope_max_seq_len=1024)
SCHEDULER = dict(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)


def umt5_encoder(vocab_size: int, seed: int = TINY_SEED):
    from transformers import UMT5Config, UMT5EncoderModel

    seeded(seed)
    config = UMT5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", pad_token_id=0,
                        eos_token_id=1, decoder_start_token_id=0, dropout_rate=0.0)
    return UMT5EncoderModel(config).eval()


def transformer(seed: int = TINY_SEED, in_channels: int = 16, out_channels: int = 16, image_dim: int | None = None):
    from diffusers import WanTransformer3DModel

    seeded(seed)
    extra = {} if image_dim is None else {"image_dim": image_dim, "added_kv_proj_dim": INNER}
    return WanTransformer3DModel(in_channels=in_channels, out_channels=out_channels, **TRANSFORMER, **extra).eval()


def clip_vision(seed: int = TINY_SEED):
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel

    seeded(seed)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, projection_dim=32, num_hidden_layers=2,
                              num_attention_heads=2, image_size=8, patch_size=4)
    processor = CLIPImageProcessorPil(size={"shortest_edge": 8}, crop_size={"height": 8, "width": 8})
    return CLIPVisionModel(config).eval(), processor


def build(seed: int = TINY_SEED, variant: str = "t2v"):
    """A tiny Wan pipeline: ``variant`` is one of VARIANTS (default: Wan 2.1 text-to-video)."""
    from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline, WanPipeline

    from .ftfy_fallback import ensure_ftfy

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    ensure_ftfy()
    tokenizer = tiny_t5_tokenizer()
    common = dict(tokenizer=tokenizer, text_encoder=umt5_encoder(len(tokenizer), seed),
                  scheduler=UniPCMultistepScheduler(**SCHEDULER))
    if variant == "t2v":
        return WanPipeline(vae=wan_vae(seed), transformer=transformer(seed), transformer_2=None, **common)
    if variant == "t2v22":
        return WanPipeline(vae=wan_vae(seed), transformer=transformer(seed), transformer_2=transformer(seed + 1),
                           boundary_ratio=0.875, **common)
    if variant == "ti2v5b":
        return WanPipeline(vae=wan_vae(seed, wan22=True), transformer=transformer(seed, 48, 48), transformer_2=None,
                           boundary_ratio=None, expand_timesteps=True, **common)
    if variant == "i2v":
        encoder, processor = clip_vision(seed)
        return WanImageToVideoPipeline(vae=wan_vae(seed), transformer=transformer(seed, 36, 16, 32), transformer_2=None,
                                       image_encoder=encoder, image_processor=processor, **common)
    return WanImageToVideoPipeline(vae=wan_vae(seed), transformer=transformer(seed, 36, 16),
                                   transformer_2=transformer(seed + 1, 36, 16), image_encoder=None,
                                   image_processor=None, boundary_ratio=0.9, **common)


def builder(variant: str):
    """``build`` for one variant (a built-in row's ``tiny``)."""
    def build_variant(seed: int = TINY_SEED, **options):
        return build(seed, options.pop("variant", variant), **options)

    build_variant.__doc__ = f"The tiny Wan pipeline, variant {variant!r}."
    return build_variant
