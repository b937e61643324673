"""The built-in tiny Krea 2 pipeline ("tiny-krea2").

Its denoiser has exactly the shapes the trainers' own Krea 2 model class (``SingleStreamDiT`` of musubi-tuner,
ai-toolkit, DiffSynth-Studio and ComfyUI, after krea-ai/krea-2's ``mmdit.py``) makes for the config
``TRAINER_CONFIG``, so LoRA files those trainers write for it fit (tests/fixtures/trainers/krea2/): head 16 gives
the trainers' rope axes (4, 6, 6); their SwiGLU width ``round_up(int(2 * features / 3) * multiplier, 128)`` is 256
(main blocks) and 128 (text fusion); the text fusion always has 2 layerwise + 2 refiner blocks. The real model's
numbers are in brackets below.

* transformer: 2 blocks [28] of 4 heads [48] x 16 [128] (hidden 64 [6144]), 1 KV head [12] (GQA 4:1 as the real
  one), SwiGLU 256 [16384], timestep embedding 32 [256], text width 32 [2560], 3 text taps [12], text fusion
  2 + 2 blocks of 2 heads x 16 [20 x 128], SwiGLU 128 [6912], rope axes (4, 6, 6) [(32, 48, 48)];
* VAE: the Qwen-Image VAE (``AutoencoderKLQwenImage``), base width 8 [96], 1 res block [2], 16 latent channels
  and an 8x scale as the real one (pixel multiple 8 x patch 2 = 16);
* text encoder: ``Qwen3VLModel`` (Qwen3-VL-4B-Instruct's class): text width 32 [2560], 4 layers [36], 2 heads
  [32] x 16 [128], 1 KV head [8], interleaved mrope [4, 2, 2] [[24, 20, 20]], a 2-block vision tower; the
  pipeline taps hidden states (1, 2, 3) [(2, 5, ..., 35)];
* tokenizer: a ``Qwen2Tokenizer`` built in memory (byte tokens, the Krea 2 prompt template's words as single
  tokens, Qwen3-VL's first 14 special tokens in their real order), so the template's system prefix is exactly
  34 tokens and its assistant suffix 5, which is where the pipeline cuts (``prompt_template_encode_start_idx``);
* scheduler: FlowMatch Euler with Krea 2's resolution-dependent shift (base 0.5, max 1.15, 256..6400 tokens,
  exponential), the pipeline docstring's values and ai-toolkit's training config.

``is_distilled=True`` builds the same weights as the Turbo variant (fixed shift mu 1.15).
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, _bytes_to_unicode, seeded

# Qwen3-VL's (= Qwen2.5-VL's) first 14 added tokens in their real order (ids 151643..151656 in the real vocab).
QWEN_SPECIALS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)
# diffusers' Krea2Pipeline prompt template (prefix + prompt + suffix; ComfyUI's KREA2_TEMPLATE).
TEMPLATE = (
    "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, spatial "
    "relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
)
PREFIX_TOKENS, SUFFIX_TOKENS = 34, 5

# The trainers' SingleMMDiTConfig for this denoiser (bias False and rope theta 1000 are their defaults).
TRAINER_CONFIG = dict(features=64, tdim=32, txtdim=32, heads=4, kvheads=1, multiplier=4, layers=2, patch=2,
                      channels=16, txtheads=2, txtkvheads=2, txtlayers=3)
TRANSFORMER = dict(
    in_channels=64, num_layers=2, attention_head_dim=16, num_attention_heads=4, num_key_value_heads=1,
    intermediate_size=256, timestep_embed_dim=32, text_hidden_dim=32, num_text_layers=3, text_num_attention_heads=2,
    text_num_key_value_heads=2, text_intermediate_size=128, num_layerwise_text_blocks=2, num_refiner_text_blocks=2,
    axes_dims_rope=(4, 6, 6), rope_theta=1000.0, norm_eps=1e-5,
)
SELECT_LAYERS = (1, 2, 3)
SCHEDULER = {"base_image_seq_len": 256, "max_image_seq_len": 6400, "base_shift": 0.5, "max_shift": 1.15,
             "num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": True,
             "time_shift_type": "exponential"}


def _template_words() -> list[str]:
    """The template's byte-level pre-tokens (space 'Ġ', newline 'Ċ'), in first-seen order."""
    import re

    from tokenizers import Regex, pre_tokenizers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    split = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    words: list[str] = []
    special = "(" + "|".join(re.escape(s) for s in QWEN_SPECIALS) + ")"
    for part in re.split(special, TEMPLATE.replace("{}", "")):
        if part and part not in QWEN_SPECIALS:
            words.extend(w for w, _ in split.pre_tokenize_str(part))
    return list(dict.fromkeys(words))


def tiny_qwen_tokenizer():
    """A Qwen2Tokenizer (what Qwen3-VL's AutoTokenizer gives) from an in-memory byte-level vocab and merges: each
    template word is one token through a left-to-right chain of merges (space-led words first: 'Ġ' only starts a
    pre-token). Any prompt tokenizes (bytes plus whatever merges apply); there is no unknown token."""
    from transformers import Qwen2Tokenizer

    vocab = {c: i for i, c in enumerate(_bytes_to_unicode())}
    words = [w for w in _template_words() if len(w) > 1]
    words = [w for w in words if w.startswith("Ġ")] + [w for w in words if not w.startswith("Ġ")]
    merges: list[tuple[str, str]] = []
    for word in words:
        for i in range(2, len(word) + 1):
            if (word[: i - 1], word[i - 1]) not in merges:
                merges.append((word[: i - 1], word[i - 1]))
            vocab.setdefault(word[:i], len(vocab))
    for token in QWEN_SPECIALS:
        vocab[token] = len(vocab)
    return Qwen2Tokenizer(
        vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token="<|im_end|>",
        pad_token="<|endoftext|>", errors="replace", model_max_length=262144, padding_side="right",
        extra_special_tokens=[s for s in QWEN_SPECIALS if s not in ("<|endoftext|>", "<|im_end|>")],
    )


def tiny_qwen3vl(tokenizer, seed: int = TINY_SEED):
    """Qwen3VLModel (the class Krea2Pipeline takes; no lm_head), vision tower included as in the real file."""
    from transformers import Qwen3VLConfig, Qwen3VLModel

    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in QWEN_SPECIALS}
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6, "pad_token_id": ids["<|endoftext|>"],
            "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [4, 2, 2],
                                "mrope_interleaved": True},
        },
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": 32,
                       "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
                       "num_position_embeddings": 64, "deepstack_visual_indexes": [0, 1]},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    seeded(seed)
    return Qwen3VLModel(config).eval()


def tiny_transformer(seed: int = TINY_SEED):
    """Krea2Transformer2DModel; its zero-initialised norms and modulation tables get small seeded values too (a
    real checkpoint's are not zero, and a LoRA on any layer must change the output)."""
    import torch
    from diffusers import Krea2Transformer2DModel

    seeded(seed)
    model = Krea2Transformer2DModel(**TRANSFORMER).eval()
    gen = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("scale_shift_table") or ".norm" in name or name.startswith("norm"):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    return model


def tiny_vae(seed: int = TINY_SEED):
    from diffusers import AutoencoderKLQwenImage

    seeded(seed)
    return AutoencoderKLQwenImage(base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                                  temperal_downsample=[False, True, True]).eval()


def build(seed: int = TINY_SEED, is_distilled: bool = False):
    """Krea2Pipeline, text-to-image (diffusers' only Krea 2 class); ``is_distilled``: the Turbo schedule."""
    from diffusers import FlowMatchEulerDiscreteScheduler, Krea2Pipeline

    tokenizer = tiny_qwen_tokenizer()
    return Krea2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(SCHEDULER), vae=tiny_vae(seed),
        text_encoder=tiny_qwen3vl(tokenizer, seed), tokenizer=tokenizer, transformer=tiny_transformer(seed),
        text_encoder_select_layers=SELECT_LAYERS, is_distilled=is_distilled, patch_size=2,
    )
