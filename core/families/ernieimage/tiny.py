"""The built-in tiny ERNIE-Image pipeline ("tiny-ernieimage").

The transformer keeps ERNIE-Image's layout (one stream of blocks over text and image tokens, shared adaLN, QK
layer norm, gated MLP) at 32 wide (real: 3072, 24 layers); the text encoder is a Mistral 3 model (a 2-layer
Ministral text model and a 1-layer Pixtral vision tower) with an in-memory byte-level tokenizer; the VAE is a
two-level ``AutoencoderKLFlux2`` (latents patchified 2x2). Its adaLN modulation and output layer start at zero,
which would make the untrained model ignore its blocks: they get seeded random values.
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, awaken, patchified_vae, seeded, tiny_bytes_tokenizer


def tiny_tokenizer():
    """The tiny pipeline's in-memory byte-level tokenizer (also the split files' tokenizer for the tiny row)."""
    return tiny_bytes_tokenizer(("<s>", "</s>", "<pad>", "[IMG]"), pad="<pad>", eos="</s>", bos="<s>",
                                prefix=("<s>",))


def build(seed: int = TINY_SEED):
    from diffusers import (
        ErnieImagePipeline,
        ErnieImageTransformer2DModel,
        FlowMatchEulerDiscreteScheduler,
    )
    from transformers import Mistral3Config, Mistral3Model

    tokenizer = tiny_tokenizer()
    seeded(seed)
    text_encoder = Mistral3Model(Mistral3Config(
        text_config={"model_type": "ministral3", "vocab_size": len(tokenizer), "hidden_size": 32,
                     "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 1, "head_dim": 16, "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id},
        vision_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "head_dim": 8, "patch_size": 14, "image_size": 28},
        image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"),
    )).eval()
    seeded(seed)
    transformer = awaken(ErnieImageTransformer2DModel(
        hidden_size=32, num_attention_heads=2, num_layers=2, ffn_hidden_size=64, in_channels=16, out_channels=16,
        patch_size=1, text_in_dim=32, rope_axes_dim=(4, 6, 6),
    ).eval(), seed)
    vae = patchified_vae(seed)
    return ErnieImagePipeline(transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                              scheduler=FlowMatchEulerDiscreteScheduler())
