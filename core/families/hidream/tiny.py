"""The built-in tiny HiDream pipeline ("tiny-hidream").

The transformer keeps HiDream-I1's layout (double-stream blocks, then single-stream blocks; attention with
separate text projections (to_q_t ...); a mixture of experts with a shared expert and a router; Llama 3 layers fed
to each block) at 32 wide (real: 2560, 16 + 32 blocks, 4 routed experts of which 2 are active); the text encoders
are two projected CLIPs (128 positions, as the pipeline tokenizes), a T5 and a 2-layer Llama with an in-memory
byte-level tokenizer carrying Llama 3's special tokens.

HiDreamImagePipeline renders every picture at the area of ``default_sample_size`` latents a side (128 on the real
model, a pipeline attribute rather than a config value): the tiny built-in sets it to 32 so that its pictures are
64 x 64, as those of the other tiny models.
"""

from __future__ import annotations

from ...models.tiny_parts import (
    TINY_SEED,
    flow_vae,
    seeded,
    tiny_bytes_tokenizer,
    tiny_clip_tokenizer,
    tiny_t5_encoder,
    tiny_t5_tokenizer,
)

SAMPLE_SIZE = 32  # latents a side of the tiny built-in's pictures (diffusers' default: 128)


def _clip(vocab_size: int, hidden: int, seed: int):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
                            hidden_size=hidden, intermediate_size=hidden * 2, projection_dim=hidden,
                            num_attention_heads=4, num_hidden_layers=2, vocab_size=vocab_size,
                            max_position_embeddings=128)
    seeded(seed)
    return CLIPTextModelWithProjection(config).eval()


def tiny_llama_tokenizer():
    """The tiny Llama's in-memory byte-level tokenizer with Llama 3's special tokens (also what single files of the
    tiny model use: models/tokenizers.py)."""
    return tiny_bytes_tokenizer(("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"), pad="<|end_of_text|>",
                                eos="<|end_of_text|>", bos="<|begin_of_text|>", prefix=("<|begin_of_text|>",))


def build(seed: int = TINY_SEED):
    from diffusers import FlowMatchEulerDiscreteScheduler, HiDreamImagePipeline, HiDreamImageTransformer2DModel
    from transformers import LlamaConfig, LlamaForCausalLM

    clip, t5 = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    llama_tokenizer = tiny_llama_tokenizer()
    seeded(seed)
    transformer = HiDreamImageTransformer2DModel(
        patch_size=2, in_channels=4, out_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=8,
        num_attention_heads=4, caption_channels=[32, 16], text_emb_dim=48, num_routed_experts=4,
        num_activated_experts=2, axes_dims_rope=(4, 2, 2), max_resolution=(32, 32), llama_layers=(0, 1),
    ).eval()
    seeded(seed)
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(llama_tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, pad_token_id=llama_tokenizer.pad_token_id,
        bos_token_id=llama_tokenizer.bos_token_id, eos_token_id=llama_tokenizer.eos_token_id,
    )).eval()
    pipe = HiDreamImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=flow_vae(4, seed),
        text_encoder=_clip(len(clip), 32, seed), tokenizer=clip, text_encoder_2=_clip(len(clip), 16, seed + 1),
        tokenizer_2=clip, text_encoder_3=tiny_t5_encoder(len(t5), seed=seed), tokenizer_3=t5,
        text_encoder_4=llama, tokenizer_4=llama_tokenizer, transformer=transformer,
    )
    pipe.default_sample_size = SAMPLE_SIZE
    return pipe
