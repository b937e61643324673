"""The built-in tiny CogView 4 pipeline ("tiny-cogview4").

The transformer keeps CogView 4's layout (one stream of blocks over text and image tokens, adaLN-Zero with a
size/crop condition embedder, patch 2) at 32 wide (real: 4096, 28 blocks); the text encoder is a 2-layer GLM
(real: GLM-4 9B) with an in-memory byte-level tokenizer carrying GLM-4's special tokens; the scheduler is
CogView 4's (dynamic linear shift 0.25-0.75 around 256 tokens).
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, flow_vae, seeded, tiny_bytes_tokenizer


def build(seed: int = TINY_SEED):
    from diffusers import CogView4Pipeline, CogView4Transformer2DModel, FlowMatchEulerDiscreteScheduler
    from transformers import GlmConfig, GlmModel

    tokenizer = tiny_bytes_tokenizer(("<|endoftext|>", "[gMASK]", "<sop>"), pad="<|endoftext|>", eos="<|endoftext|>",
                                     prefix=("[gMASK]", "<sop>"))
    seeded(seed)
    transformer = CogView4Transformer2DModel(
        patch_size=2, in_channels=4, num_layers=2, attention_head_dim=16, num_attention_heads=2, out_channels=4,
        text_embed_dim=32, time_embed_dim=16, condition_dim=8,
    ).eval()
    seeded(seed)
    text_encoder = GlmModel(GlmConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, pad_token_id=tokenizer.pad_token_id,
    )).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(base_shift=0.25, max_shift=0.75, base_image_seq_len=256,
                                                use_dynamic_shifting=True, time_shift_type="linear")
    return CogView4Pipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=flow_vae(4, seed),
                            transformer=transformer, scheduler=scheduler)
