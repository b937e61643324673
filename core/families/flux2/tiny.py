"""The built-in tiny FLUX.2 [klein] pipeline ("tiny-flux2") and the parts FLUX.2 [dev]'s shares.

Pinned numbers (the real klein-4B / klein-9B / dev in brackets):

- ``Flux2Transformer2DModel``: hidden 32 = 2 heads x 16 [3072 = 24 x 128 / 4096 = 32 x 128 / 6144 = 48 x 128],
  2 double-stream ``transformer_blocks`` + 2 single-stream ``single_transformer_blocks`` [5 + 20 / 8 + 24 / 8 + 48],
  mlp_ratio 3 (SwiGLU, mlp hidden 96), ``in_channels`` 16 = 4 latent channels x 2x2 patchified [128 = 32 x 4],
  ``joint_attention_dim`` 48 = 3 stacked text-encoder layers x 16 [7680 / 12288 / 15360], axes (4, 4, 4, 4)
  [(32, 32, 32, 32)], theta 2000, no bias anywhere, ``guidance_embeds`` False (klein) / True (dev).
- Text encoder ``Qwen3ForCausalLM``: 28 layers [Qwen3-4B/8B: 36], the fewest whose hidden states 9, 18 and 27 (what
  the pipeline stacks; the real encoder's layers 28-35 feed nothing) are plain layer outputs, not the last, normed
  one; hidden 16 = 1 head x 16 (one head: the 512-token prompt's attention is most of a tiny run; the real
  encoder groups 32 query heads over 8 key/value heads), intermediate 32, tied embeddings, vocab 261.
- Tokenizer ``Qwen2TokenizerFast`` built in memory: the 256 byte symbols (no merges), ``<|endoftext|>`` (pad, eos),
  ``<|im_start|>``, ``<|im_end|>``, ``<think>``, ``</think>``, and the part of Qwen3's chat template the pipeline
  renders (``enable_thinking=False``).
- VAE ``AutoencoderKLFlux2``: 4 levels (8x, as the real one), channels (8, 8, 16, 16), 1 layer per block, 4 latent
  channels [32], quant convs, the BatchNorm ``bn`` over the 16 patchified channels.
- Scheduler ``FlowMatchEulerDiscreteScheduler`` with FLUX.2's config (dynamic shifting; the pipeline passes its own
  sigmas and an empirical ``mu``). Pixels per token side: 8 (VAE) x 2 (patchify) = 16.

The klein built-in is the *base* model (``is_distilled`` False): guidance runs real classifier-free guidance
against the empty prompt, as klein-base-4B/9B do (the distilled klein repos ignore it).
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, _bytes_to_unicode, seeded

# Qwen3's chat template, cut to what diffusers' FLUX.2 klein pipelines render (one user turn,
# add_generation_prompt=True, enable_thinking=False): the same text as the full template for those inputs.
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

# FLUX.2's scheduler_config.json (the FLUX.2-dev and klein repos): dynamic shifting, exponential time shift.
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                        max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096,
                        time_shift_type="exponential")


def tiny_qwen3_tokenizer():
    """Qwen3's tokenizer class from an in-memory byte vocab, with the chat template the pipeline renders."""
    from tokenizers import AddedToken
    from transformers import Qwen2TokenizerFast

    vocab = {c: i for i, c in enumerate(_bytes_to_unicode())}
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    for token in (*specials, "<think>", "</think>"):
        vocab[token] = len(vocab)
    tokenizer = Qwen2TokenizerFast(vocab=vocab, merges=[], unk_token=None, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", model_max_length=131072)
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    tokenizer.add_tokens([AddedToken("<think>", special=False), AddedToken("</think>", special=False)])
    tokenizer.chat_template = QWEN3_CHAT_TEMPLATE
    return tokenizer


def tiny_qwen3_text_encoder(vocab_size: int, seed: int = TINY_SEED):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=28,
                         num_attention_heads=1, num_key_value_heads=1, head_dim=16, max_position_embeddings=1024,
                         rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6, bos_token_id=None,
                         eos_token_id=vocab_size - 5, pad_token_id=vocab_size - 5)
    seeded(seed)
    return Qwen3ForCausalLM(config).eval()


def tiny_transformer(guidance_embeds: bool = False, seed: int = TINY_SEED, heads: int = 2):
    from diffusers import Flux2Transformer2DModel

    seeded(seed)
    return Flux2Transformer2DModel(
        patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=heads,
        joint_attention_dim=48, timestep_guidance_channels=256, mlp_ratio=3.0, axes_dims_rope=(4, 4, 4, 4),
        rope_theta=2000, eps=1e-6, guidance_embeds=guidance_embeds,
    ).eval()


def tiny_vae(seed: int = TINY_SEED):
    from diffusers import AutoencoderKLFlux2

    seeded(seed)
    return AutoencoderKLFlux2(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
        latent_channels=4, norm_num_groups=4, sample_size=64, use_quant_conv=True, use_post_quant_conv=True,
    ).eval()


def scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)


def build(seed: int = TINY_SEED, is_distilled: bool = False):
    """FLUX.2 [klein] base (``is_distilled=True``: the distilled klein, which ignores guidance)."""
    from diffusers import Flux2KleinPipeline

    tokenizer = tiny_qwen3_tokenizer()
    return Flux2KleinPipeline(
        scheduler=scheduler(), vae=tiny_vae(seed), text_encoder=tiny_qwen3_text_encoder(len(tokenizer), seed),
        tokenizer=tokenizer, transformer=tiny_transformer(False, seed), is_distilled=is_distilled,
    )
