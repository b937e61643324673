"""The parts the built-in tiny models share: in-memory tokenizers, tiny text encoders and VAEs, seeding.

Each family's folder (``core/families/<key>/tiny.py``) assembles its tiny pipeline from these and its own
denoiser: real diffusers/transformers classes with tiny configs and fixed seeds, structurally faithful (an SD 1.x
UNet has four down blocks, two layers per block, attention where SD 1.x has it), so block weights, kohya key
names and every LoRA code path meet the same module names as on a full-size model, at a few megabytes.
Importing this module loads nothing heavy; each builder imports torch/diffusers/transformers when called.
"""

from __future__ import annotations

TINY_SEED = 0
# Byte-level BPE vocab with no merges: every byte is a token, so any prompt tokenizes offline.
_SPECIAL = ("<|startoftext|>", "<|endoftext|>")


def _bytes_to_unicode() -> list[str]:
    # GPT-2 / CLIP byte-to-printable-character table.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def seeded(seed: int) -> None:
    """Seed torch's global generator before building a model (its weights are drawn in construction order)."""
    import torch

    torch.manual_seed(seed)


def tiny_clip_tokenizer():
    """A CLIPTokenizer built in memory: byte tokens, byte+</w> tokens, start and end tokens."""
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + list(_SPECIAL)
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_clip_text_encoder(vocab_size: int, hidden: int = 32, projection: bool = False, seed: int = TINY_SEED):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        projection_dim=hidden,
        num_attention_heads=4,
        num_hidden_layers=2,
        layer_norm_eps=1e-5,
        vocab_size=vocab_size,
        max_position_embeddings=77,
        hidden_act="gelu",
    )
    seeded(seed)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(config).eval()


def tiny_vae(seed: int = TINY_SEED):
    """A four-level VAE (8x downscale, 4 latent channels), like SD's."""
    from diffusers import AutoencoderKL

    seeded(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    ).eval()


def tiny_t5_tokenizer():
    """A T5 tokenizer from an in-memory Unigram vocab (letters and a few words), no files needed."""
    from transformers import T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>", "▁"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces += [f"▁{w}" for w in ("a", "the", "of", "photo", "cat", "lighthouse")]
    vocab = [(p, -float(i)) for i, p in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0, unk_id=2)


def tiny_t5_encoder(vocab_size: int, seed: int = TINY_SEED):
    from transformers import T5Config, T5EncoderModel

    seeded(seed)
    config = T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5EncoderModel(config).eval()


def flow_vae(latent_channels: int, seed: int):
    from diffusers import AutoencoderKL

    seeded(seed)
    return AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8, 8),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, latent_channels=latent_channels, norm_num_groups=4,
                         use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                         scaling_factor=1.5035).eval()


# Qwen3's chat template for text messages (no tools), with the enable_thinking switch the pipelines pass; it
# renders what the real Qwen3 tokenizers' template renders for such messages (Z-Image wraps a prompt as
# "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n", as ComfyUI's llama_template does).
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)
_QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")


def tiny_qwen_tokenizer():
    """A Qwen2Tokenizer from an in-memory byte-level vocab (every byte a token, no merges) with Qwen's special
    tokens and Qwen3's chat template (261 tokens)."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab = {c: i for i, c in enumerate(_bytes_to_unicode())}
    for token in _QWEN_SPECIAL:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token="<|endoftext|>", eos_token="<|im_end|>",
                               pad_token="<|endoftext|>", model_max_length=131072, chat_template=QWEN3_CHAT_TEMPLATE)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in _QWEN_SPECIAL[1:]],
                         special_tokens=True)
    return tokenizer


def tiny_qwen3_encoder(vocab_size: int, seed: int = TINY_SEED):
    """A Qwen3Model: hidden 32, 2 layers, 2 heads x 16 with 1 KV head (grouped-query like the real Qwen3s)."""
    from transformers import Qwen3Config, Qwen3Model

    config = Qwen3Config(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=1024,
                         rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                         pad_token_id=vocab_size - 5, bos_token_id=None, eos_token_id=vocab_size - 3)
    seeded(seed)
    return Qwen3Model(config).eval()
