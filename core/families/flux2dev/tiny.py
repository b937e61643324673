"""The built-in tiny FLUX.2 [dev] pipeline ("tiny-flux2dev").

Pinned numbers (the real FLUX.2 [dev] in brackets):

- ``Flux2Transformer2DModel`` as the klein built-in's (``flux2/tiny.py``) but 3 heads x 16 = 48 wide [48 x 128 =
  6144], so a klein file does not fit it (as on the real models), with ``guidance_embeds`` (the
  ``guidance_embedder``: dev's guidance is embedded, not classifier-free); ``joint_attention_dim`` 48 = 3 stacked
  text-encoder layers x 16 [3 x 5120 = 15360].
- Text encoder ``Mistral3ForConditionalGeneration``: a Mistral text model of 31 layers [Mistral Small 3.x 24B: 40],
  the fewest whose hidden states 10, 20 and 30 (what the pipeline stacks) are plain layer outputs, not the last,
  normed one; hidden 16 = 1 head x 16 (as klein's), intermediate 32; a 2-layer
  Pixtral vision tower and the patch-merger projector, as the real checkpoint has (same module names).
- Tokenizer: a byte-level BPE fast tokenizer shaped like Mistral's tekken (special ids 0-19: ``<s>`` 1, ``</s>`` 2,
  ``[INST]`` 3, ``[/INST]`` 4, ``[IMG]`` 10, ``<pad>`` 11, ``[SYSTEM_PROMPT]`` 17 ...; then the 256 bytes; left
  padding) with Mistral-Small-3.1's chat template. The real ``tokenizer`` component is a ``PixtralProcessor``,
  which transformers 5 builds only with torchvision installed; prompt encoding needs only the tokenizer's
  ``apply_chat_template``, so text-to-image and reference edits run with this one (caption upsampling,
  ``caption_upsample_temperature``, needs the processor and does not).
- VAE and scheduler: the klein built-in's.
"""

from __future__ import annotations

from ...models.tiny_parts import MISTRAL3_CHAT_TEMPLATE, SPECIALS, TINY_SEED, seeded, tiny_mistral_tokenizer
from ..flux2.tiny import scheduler, tiny_transformer, tiny_vae

__all__ = ("MISTRAL3_CHAT_TEMPLATE", "SPECIALS", "build", "tiny_mistral3_text_encoder", "tiny_mistral_tokenizer")

def tiny_mistral3_text_encoder(vocab_size: int, seed: int = TINY_SEED):
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    config = Mistral3Config(
        text_config={"model_type": "mistral", "vocab_size": vocab_size, "hidden_size": 16, "intermediate_size": 32,
                     "num_hidden_layers": 31, "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 16,
                     "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 1000000000.0,
                     "sliding_window": None, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 11,
                     "tie_word_embeddings": False},
        vision_config={"model_type": "pixtral", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "intermediate_size": 32, "image_size": 56, "patch_size": 14, "num_channels": 3, "head_dim": 8},
        image_token_index=10, spatial_merge_size=2, vision_feature_layer=-1, projector_hidden_act="gelu",
        multimodal_projector_bias=False,
    )
    seeded(seed)
    return Mistral3ForConditionalGeneration(config).eval()


def build(seed: int = TINY_SEED):
    from diffusers import Flux2Pipeline

    tokenizer = tiny_mistral_tokenizer()
    return Flux2Pipeline(
        scheduler=scheduler(), vae=tiny_vae(seed), text_encoder=tiny_mistral3_text_encoder(len(tokenizer), seed),
        tokenizer=tokenizer, transformer=tiny_transformer(True, seed, heads=3),
    )
