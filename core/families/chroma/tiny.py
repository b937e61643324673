"""The built-in tiny Chroma pipeline ("tiny-chroma").

Chroma1-HD's layout at toy size (its real numbers in brackets): a ``ChromaTransformer2DModel`` of inner width
32 = 2 heads x 16 [3072 = 24 x 128], 2 double blocks [19] and 2 single blocks [38], mlp ratio 4, an approximator
(``distilled_guidance_layer``) of 2 layers, 16 input channels and width 32 [5 layers, 64, 5120]; a T5 v1.1
encoder (gated-gelu feed-forward: ``wi_0``, ``wi_1``, ``wo``, as T5-XXL) as ``text_encoder`` [T5-XXL, 24 layers];
the flow VAE the other tiny transformer models use [FLUX.1's VAE]; Chroma1-HD's scheduler config (FLUX.1
schnell's: FlowMatch Euler, shift 1, no dynamic shifting [diffusers issue #12112]).
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, flow_vae, seeded, tiny_t5_tokenizer
from .fixes import fix

TRANSFORMER = dict(patch_size=1, in_channels=4, num_layers=2, num_single_layers=2, attention_head_dim=16,
                   num_attention_heads=2, joint_attention_dim=32, axes_dims_rope=(4, 4, 8),
                   approximator_num_channels=16, approximator_hidden_dim=32, approximator_layers=2)
# Chroma1-HD's scheduler/scheduler_config.json (FLUX.1 schnell's)
SCHEDULER = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15,
                 num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)


def t5_v11_encoder(vocab_size: int, seed: int = TINY_SEED):
    """A tiny T5 v1.1 encoder (gated-gelu feed-forward, untied embeddings), as the T5-XXL Chroma reads."""
    from transformers import T5Config, T5EncoderModel

    seeded(seed)
    config = T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", pad_token_id=0,
                      eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=False)
    return T5EncoderModel(config).eval()


def build(seed: int = TINY_SEED):
    """Chroma layout: a double/single-stream transformer with an approximator, one T5 text encoder, no CLIP.
    The pipeline comes with the family's fixes applied (fixes.py), as every pipeline LoRA Deck owns."""
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    tokenizer = tiny_t5_tokenizer()
    seeded(seed)
    transformer = ChromaTransformer2DModel(**TRANSFORMER).eval()
    pipe = ChromaPipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER), vae=flow_vae(1, seed),
        text_encoder=t5_v11_encoder(len(tokenizer), seed=seed), tokenizer=tokenizer,
        image_encoder=None, feature_extractor=None,
    )
    fix(pipe)
    return pipe
