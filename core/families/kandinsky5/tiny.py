"""The built-in tiny Kandinsky 5 text-to-image pipeline ("tiny-kandinsky5").

The transformer keeps Kandinsky 5.0 Image Lite's layout (text blocks, then visual blocks with self- and
cross-attention, each modulated by the time and pooled CLIP embeddings; patch 1x2x2) at 32 wide (real: 2560,
2 text + 50 visual blocks); the text encoders are a 2-layer Qwen2.5-VL (real: 7B) with the tiny Qwen-Image's
in-memory Qwen2 tokenizer (the real models share Qwen2.5-VL's vocabulary, so split files of either find the one
built-in tokenizer; the real model ships a Qwen2-VL processor, and the pipeline only tokenizes text with it) and a
tiny CLIP-L. The pipeline fixes the VAE scale factor at 8, so the VAE has four levels (16 latent channels, FLUX.1's
scaling and, as FLUX.1's ``ae.safetensors``, a mid-block attention).
Its modulation layers start at zero, which would make the untrained model ignore its blocks: they get seeded
random values. ``resolutions`` (a pipeline attribute) gets the tiny size 64 x 64 in front.
"""

from __future__ import annotations

from ...models.tiny_parts import (
    QWEN_SPECIAL,
    TINY_SEED,
    awaken,
    flux_vae8,
    seeded,
    tiny_clip_text_encoder,
    tiny_clip_tokenizer,
)

TINY_SIZE = (64, 64)


def tiny_qwen25_vl(tokenizer, seed: int = TINY_SEED):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    config = Qwen2_5_VLConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                     "rope_theta": 1000000.0, "max_position_embeddings": 4096,
                     "rope_scaling": {"type": "mrope", "mrope_section": [2, 2, 4], "rope_type": "default"},
                     "pad_token_id": ids["<|endoftext|>"], "bos_token_id": ids["<|endoftext|>"],
                     "eos_token_id": ids["<|im_end|>"]},
        vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                       "out_hidden_size": 32},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    seeded(seed)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def build(seed: int = TINY_SEED):
    from diffusers import FlowMatchEulerDiscreteScheduler, Kandinsky5T2IPipeline, Kandinsky5Transformer3DModel

    from ..qwenimage.tiny import tiny_qwen_tokenizer

    tokenizer, clip = tiny_qwen_tokenizer(), tiny_clip_tokenizer()
    seeded(seed)
    transformer = Kandinsky5Transformer3DModel(
        in_visual_dim=16, in_text_dim=32, in_text_dim2=32, time_dim=16, out_visual_dim=16, patch_size=(1, 2, 2),
        model_dim=32, ff_dim=64, num_text_blocks=1, num_visual_blocks=2, axes_dims=(4, 6, 6), visual_cond=False,
        attention_type="regular",
    ).eval()
    awaken(transformer, seed)
    pipe = Kandinsky5T2IPipeline(
        transformer=transformer, vae=flux_vae8(16, seed),
        text_encoder=tiny_qwen25_vl(tokenizer, seed), tokenizer=tokenizer,
        text_encoder_2=tiny_clip_text_encoder(len(clip), seed=seed), tokenizer_2=clip,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    pipe.resolutions = [TINY_SIZE, *pipe.resolutions]
    return pipe
