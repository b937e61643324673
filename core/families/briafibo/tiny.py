"""The built-in tiny Bria FIBO pipeline ("tiny-briafibo").

The transformer keeps FIBO's layout (FLUX.1's joint and single blocks, a caption projection per block from the
text encoder's layers, no pooled projection) at 48 wide (3 heads of 16; real: 3072, FLUX.1's width, 8 joint + 38
single blocks): not the tiny Flux's 32, so that each tiny model refuses the other's files by shape, as their
module names are the same. The text encoder is a 2-layer SmolLM3 (real: 3B) with SmolLM3's 128k vocab (the
pipeline's begin-of-text id is 128000) and an in-memory byte-level tokenizer; the VAE is Wan 2.2's
(``AutoencoderKLWan`` with patch 2, 16x) at base width 16.
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, seeded, tiny_bytes_tokenizer

VOCAB = 128256  # SmolLM3's: BriaFiboPipeline writes token id 128000 (begin of text) for an empty prompt


def build(seed: int = TINY_SEED):
    from diffusers import (
        AutoencoderKLWan,
        BriaFiboPipeline,
        BriaFiboTransformer2DModel,
        FlowMatchEulerDiscreteScheduler,
    )
    from transformers import SmolLM3Config, SmolLM3ForCausalLM

    tokenizer = tiny_bytes_tokenizer(("<|begin_of_text|>", "<|end_of_text|>"), pad="<|end_of_text|>",
                                     eos="<|end_of_text|>", bos="<|begin_of_text|>", prefix=("<|begin_of_text|>",))
    seeded(seed)
    transformer = BriaFiboTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=2, attention_head_dim=16, num_attention_heads=3,
        joint_attention_dim=64, text_encoder_dim=32, pooled_projection_dim=None, axes_dims_rope=[0, 8, 8],
    ).eval()
    seeded(seed)
    vae = AutoencoderKLWan(
        base_dim=16, decoder_base_dim=16, num_res_blocks=1, in_channels=12, out_channels=12, patch_size=2,
        scale_factor_spatial=16, scale_factor_temporal=4, temperal_downsample=[False, True, True], z_dim=16,
        is_residual=True,
    ).eval()
    seeded(seed)
    text_encoder = SmolLM3ForCausalLM(SmolLM3Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )).eval()
    return BriaFiboPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), text_encoder=text_encoder,
                            tokenizer=tokenizer, transformer=transformer, vae=vae)
