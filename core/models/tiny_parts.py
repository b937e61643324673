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



def patchified_vae(seed: int):
    """FLUX.2's autoencoder class at 8 wide with a 2x2 patchified latent (ERNIE-Image's and Ideogram 4's)."""
    from diffusers import AutoencoderKLFlux2

    seeded(seed)
    return AutoencoderKLFlux2(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1, latent_channels=4,
        norm_num_groups=4, sample_size=32, patch_size=(2, 2), use_quant_conv=False, use_post_quant_conv=False,
    ).eval()

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


# Qwen2.5-VL's (= Qwen3-VL's) first 14 added tokens in their real order (ids 151643..151656 in the real vocab)
QWEN_SPECIALS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)


def template_words(texts: tuple[str, ...], specials: tuple[str, ...]) -> list[str]:
    """The byte-level pre-tokens (space 'Ġ', newline 'Ċ') of prompt templates (``{}`` marks the prompt), special
    tokens left out, in first-seen order."""
    import re

    from tokenizers import Regex, pre_tokenizers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    split = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    special = "(" + "|".join(re.escape(s) for s in specials) + ")"
    words: list[str] = []
    for text in texts:
        for part in re.split(special, text.replace("{}", "")):
            if part and part not in specials:
                words.extend(w for w, _ in split.pre_tokenize_str(part))
    return list(dict.fromkeys(words))


def template_tokenizer(texts: tuple[str, ...], specials: tuple[str, ...], **options):
    """A Qwen2Tokenizer from an in-memory byte-level vocab and merges in which each multi-character pre-token of
    the templates is one token, through a left-to-right merge chain ('Ġ' + 't' -> 'Ġt', 'Ġt' + 'h' ...). Space-led
    words come first: 'Ġ' only ever starts a pre-token, so their chains cannot fire inside another word. Any prompt
    tokenizes (bytes plus whatever merges apply); there is no unknown token. ``specials`` are added after the vocab
    in their order (eos <|im_end|>, pad <|endoftext|>); ``options`` go to the tokenizer."""
    from transformers import Qwen2Tokenizer

    vocab = {c: i for i, c in enumerate(_bytes_to_unicode())}
    words = [w for w in template_words(texts, specials) if len(w) > 1]
    words = [w for w in words if w.startswith("Ġ")] + [w for w in words if not w.startswith("Ġ")]
    merges: list[tuple[str, str]] = []
    for word in words:
        for i in range(2, len(word) + 1):
            if (word[: i - 1], word[i - 1]) not in merges:
                merges.append((word[: i - 1], word[i - 1]))
            vocab.setdefault(word[:i], len(vocab))
    for token in specials:
        vocab[token] = len(vocab)
    return Qwen2Tokenizer(
        vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token="<|im_end|>",
        pad_token="<|endoftext|>", errors="replace",
        extra_special_tokens=[s for s in specials if s not in ("<|endoftext|>", "<|im_end|>")], **options)
# -- the long-tail families' shared parts (Lumina 2, Sana, CogView 4, HiDream, Kandinsky 5, Ideogram 4, ERNIE) --
_GEMMA_SPECIAL = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>")


def _prompt_words() -> list[str]:
    """The words of the prompts diffusers' Gemma pipelines prepend (Sana's complex human instruction, Lumina 2's
    system prompt), so that a tiny Gemma tokenizer makes them one token each, as the real 256k vocab does."""
    import inspect

    from diffusers import SanaPipeline

    chi = inspect.signature(SanaPipeline.__call__).parameters["complex_human_instruction"].default
    # Lumina2Pipeline.__init__'s system_prompt (an instance attribute) and the text it joins the prompt with
    system = ("You are an assistant designed to generate superior images with the superior degree of image-text "
              "alignment based on textual prompts or user prompts. <Prompt Start>")
    words: list[str] = []
    for text in (*chi, system):
        words.extend(w for w in text.split() if w not in words)
    return words


def tiny_gemma_tokenizer():
    """A GemmaTokenizer built in memory: Gemma's special tokens, byte fallback (<0x00>..<0xFF>), printable ASCII,
    and merge chains that make each word of the pipelines' own prompt templates one '▁word' token."""
    from transformers import GemmaTokenizer

    tokens = [*_GEMMA_SPECIAL, *(f"<0x{b:02X}>" for b in range(256)), "▁", *(chr(c) for c in range(33, 127))]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    merges: list[tuple[str, str]] = []
    for word in ("▁" + w for w in _prompt_words()):
        for i in range(2, len(word) + 1):
            if word[:i] not in vocab and all(c in vocab for c in word):
                merges.append((word[: i - 1], word[i - 1]))
                vocab[word[:i]] = len(vocab)
    return GemmaTokenizer(vocab=vocab, merges=merges, model_max_length=8192)


def tiny_gemma2_encoder(vocab_size: int, hidden: int = 16, seed: int = TINY_SEED):
    """A Gemma2Model (Lumina 2's and Sana's text encoder): 2 layers, 2 heads x 8 with 1 KV head, sliding window."""
    from transformers import Gemma2Config, Gemma2Model

    config = Gemma2Config(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2,
                          num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=hidden // 2,
                          max_position_embeddings=8192, sliding_window=4096, pad_token_id=0, eos_token_id=1,
                          bos_token_id=2)
    seeded(seed)
    return Gemma2Model(config).eval()


def tiny_bytes_tokenizer(special: tuple[str, ...], pad: str, eos: str, bos: str | None = None,
                         prefix: tuple[str, ...] = ()):
    """A byte-level BPE PreTrainedTokenizerFast (every byte a token, no merges) with ``special`` tokens, putting
    ``prefix`` before every text as the real tokenizer's template does (Llama 3's <|begin_of_text|>, GLM-4's
    [gMASK]<sop>): what Llama 3, GLM-4 and Mistral tokenizers are to their pipelines (which only call, pad and
    decode them)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(_bytes_to_unicode())}
    for token in special:
        vocab[token] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    if prefix:
        head = " ".join(prefix)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{head} $A", pair=f"{head} $A $B", special_tokens=[(t, vocab[t]) for t in prefix])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=pad, eos_token=eos, bos_token=bos,
                                   model_max_length=131072,
                                   additional_special_tokens=[t for t in special if t not in (pad, eos, bos)])


# Qwen2.5-VL's first special tokens in their real order, and a chat template for text messages (string or
# [{"type": "text", ...}] contents), as the real Qwen2.5-VL / Qwen3-VL templates render them
QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
QWEN_VL_CHAT_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}{%- else %}"
    "{%- for part in message['content'] %}{%- if part['type'] == 'text' %}{{- part['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}{{- '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def tiny_qwen_vl_tokenizer():
    """A Qwen2Tokenizer from an in-memory byte-level vocab (no merges) with Qwen2.5-VL's special tokens and a chat
    template for text messages (270 tokens)."""
    from transformers import Qwen2Tokenizer

    vocab = {c: i for i, c in enumerate(_bytes_to_unicode())}
    for token in QWEN_SPECIAL:
        vocab[token] = len(vocab)
    return Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, bos_token=None, eos_token="<|im_end|>",
                          pad_token="<|endoftext|>", model_max_length=131072, chat_template=QWEN_VL_CHAT_TEMPLATE,
                          extra_special_tokens=[t for t in QWEN_SPECIAL if t not in ("<|endoftext|>", "<|im_end|>")])


def flux_vae8(latent_channels: int, seed: int = TINY_SEED, mid_attention: bool = True):
    """A four-level VAE (8x downscale) with FLUX.1's latent scaling and shift, for pipelines that fix the VAE
    scale factor at 8 (Lumina 2, Kandinsky 5)."""
    from diffusers import AutoencoderKL

    seeded(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 8, 8, 8),
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         layers_per_block=1, latent_channels=latent_channels, norm_num_groups=4, sample_size=64,
                         use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159,
                         scaling_factor=0.3611, mid_block_add_attention=mid_attention).eval()


def awaken(model, seed: int = TINY_SEED):
    """Draw seeded random values (a Linear's usual scale, 1/sqrt(fan-in)) for the weights a model initialises to
    zero (modulation and output layers that make an untrained model ignore its blocks): a trained checkpoint has
    none, and LoRAs on a model that ignores its blocks could not be told apart."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            if param.ndim >= 2 and not param.any():
                param.copy_(torch.randn(param.shape, generator=generator) * param[0].numel() ** -0.5)
    return model


def wan_vae(seed: int = TINY_SEED, wan22: bool = False):
    """Wan's autoencoder at base width 8 (8x spatial, 4x temporal); ``wan22``: the Wan 2.2 VAE of TI2V-5B."""
    from diffusers import AutoencoderKLWan

    seeded(seed)
    if wan22:  # the Wan 2.2 VAE (TI2V-5B): 48 latent channels, 2x2 pixel patches, 16x spatial
        return AutoencoderKLWan(base_dim=8, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
                                latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1],
                                num_res_blocks=1, scale_factor_spatial=16, scale_factor_temporal=4,
                                temperal_downsample=[False, True, True]).eval()
    return AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True]).eval()


# Mistral-Small-3.1's chat template, the part FLUX.2 [dev] renders (a system message as a content list, user turns
# of text and image blocks); the default-system-message branch is left out: FLUX.2 always sends its own.
MISTRAL3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- if messages[0]['content'] is string %}{%- set system_message = messages[0]['content'] %}"
    "{%- else %}{%- set system_message = messages[0]['content'][0]['text'] %}{%- endif %}"
    "{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if message['content'] is string %}{{- '[INST]' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST]' }}"
    "{%- for block in message['content'] %}"
    "{%- if block['type'] == 'text' %}{{- block['text'] }}"
    "{%- elif block['type'] == 'image' or block['type'] == 'image_url' %}{{- '[IMG]' }}"
    "{%- else %}{{- raise_exception('Only text and image blocks are supported in message content!') }}"
    "{%- endif %}{%- endfor %}{{- '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'system' %}{{- '[SYSTEM_PROMPT]' + message['content'] + '[/SYSTEM_PROMPT]' }}"
    "{%- elif message['role'] == 'assistant' %}{{- message['content'] + eos_token }}"
    "{%- else %}{{- raise_exception('Only user, system and assistant roles are supported!') }}{%- endif %}"
    "{%- endfor %}"
)
# tekken's first special tokens (ids 0-19): the ones Mistral3Config refers to are [IMG] 10 and <pad> 11
SPECIALS = ("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
            "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]", "[PREFIX]", "[MIDDLE]",
            "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]")


def tiny_mistral_tokenizer():
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS)}
    for symbol in _bytes_to_unicode():
        vocab[symbol] = len(vocab)
    backend = Tokenizer(BPE(vocab=vocab, merges=[], fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<pad>", model_max_length=131072,
                                        padding_side="left")
    tokenizer.add_special_tokens({"additional_special_tokens": [*SPECIALS[3:11], *SPECIALS[12:]]})
    tokenizer.chat_template = MISTRAL3_CHAT_TEMPLATE
    return tokenizer
