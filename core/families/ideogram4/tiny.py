"""The built-in tiny Ideogram 4 pipeline ("tiny-ideogram4").

Both transformers keep Ideogram 4's layout (one stream over text features and image tokens, MRoPE, adaLN from a
shared projection, SwiGLU; the VAE's latents patchified 2x2) at 32 wide (real: 4608, 34 layers); the text
encoder is a Qwen3-VL with the 36 layers the pipeline taps (13 of them) at 8 wide, with an in-memory Qwen2
tokenizer and a chat template for text messages; the VAE is a two-level ``AutoencoderKLFlux2``.
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, patchified_vae, seeded, tiny_qwen_vl_tokenizer


def build(seed: int = TINY_SEED):
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        Ideogram4Pipeline,
        Ideogram4Transformer2DModel,
    )
    from diffusers.pipelines.ideogram4.pipeline_ideogram4 import QWEN3_VL_ACTIVATION_LAYERS
    from transformers import Qwen3VLConfig, Qwen3VLModel

    tokenizer = tiny_qwen_vl_tokenizer()
    text_width = 8
    seeded(seed)
    text_encoder = Qwen3VLModel(Qwen3VLConfig(
        text_config={"hidden_size": text_width, "num_hidden_layers": max(QWEN3_VL_ACTIVATION_LAYERS) + 1,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 16, "head_dim": 4,
                     "vocab_size": len(tokenizer), "max_position_embeddings": 4096, "rope_theta": 10000.0,
                     "rope_scaling": {"rope_type": "default", "mrope_section": [1, 0, 1], "mrope_interleaved": True}},
        vision_config={"hidden_size": 8, "depth": 1, "num_heads": 2, "intermediate_size": 16,
                       "out_hidden_size": text_width, "patch_size": 14},
    )).eval()
    shape = dict(in_channels=16, num_layers=2, attention_head_dim=8, num_attention_heads=4, intermediate_size=64,
                 adaln_dim=16, llm_features_dim=len(QWEN3_VL_ACTIVATION_LAYERS) * text_width, rope_theta=10_000,
                 mrope_section=(2, 1, 1), norm_eps=1e-5)
    seeded(seed)
    transformer = Ideogram4Transformer2DModel(**shape).eval()
    unconditional = Ideogram4Transformer2DModel(**shape).eval()
    vae = patchified_vae(seed)
    return Ideogram4Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                             tokenizer=tokenizer, transformer=transformer, unconditional_transformer=unconditional)
