"""The built-in tiny Qwen-Image pipelines ("tiny-qwenimage", and "tiny-qwenimage-edit": the same weights in
diffusers' QwenImageEditPlusPipeline).

Real diffusers / transformers classes with tiny seeded configs, starting from diffusers' own tests
(tests/pipelines/qwenimage/) and widened to keep the real model's proportions (real sizes in brackets):

* transformer ``QwenImageTransformer2DModel``: patch 2 [2], in_channels 64 [64] (16 latent channels x 2x2),
  out_channels 16 [16], 2 blocks [60], 2 heads x 16 = inner 32 [24 x 128 = 3072], joint_attention_dim 32 [3584],
  axes_dims_rope (4, 6, 6) [(16, 56, 56)], no guidance embedding [none]. Per block: img_mod.1 / txt_mod.1 32->192
  (6 x dim: the AdaLN modulation), attn.to_q/k/v, add_q/k/v_proj, to_out.0, to_add_out 32->32, img_mlp / txt_mlp
  net.0.proj 32->128 and net.2 128->32.
* VAE ``AutoencoderKLQwenImage`` (Wan 2.1 architecture): base_dim 4 [96], z_dim 16 [16], dim_mult [1, 2, 4, 4],
  1 res block [2], temporal downsampling [False, True, True] -> 8x, pixel multiple 16 (8 x patch 2); the real
  latents_mean / latents_std (the class defaults).
* text encoder ``Qwen2_5_VLForConditionalGeneration``: text hidden 32 [3584], 2 layers [28], 4 heads of 8 [28 of
  128], 2 KV heads [4], mrope_section [1, 1, 2] [[16, 24, 24]], untied lm_head; vision tower (used by the Edit
  pipelines only) depth 2 [32], hidden 16 [1280], out 32 [3584], patch 14, temporal patch 2, merge 2.
* tokenizer ``Qwen2Tokenizer`` built in memory: 256 byte tokens, merge chains that make every pre-token of the
  pipelines' prompt templates one token (as the real 151k vocab does: the pipelines drop a fixed 34 (text-to-image)
  or 64 (edit) template tokens, which only drops exactly the system prompt when it tokenizes as on the real
  model), and Qwen2.5-VL's 14 first special tokens in their real order.
* Edit processor: ``processor.qwen_processor`` (a ``Qwen2VLProcessor`` on the PIL image backend: no torchvision).
* scheduler: ``FlowMatchEulerDiscreteScheduler`` with Qwen/Qwen-Image's real scheduler_config.json.
"""

from __future__ import annotations

from ...models.tiny_parts import QWEN_SPECIALS, TINY_SEED, seeded, template_tokenizer
from .processor import qwen_processor
from .schedulers import QWEN_SCHEDULER_CONFIG
from .templates import EDIT_TEMPLATE, EXTRA_TEXT, T2I_TEMPLATE

DROPPED = {"t2i": 34, "edit": 64}  # the pipelines' prompt_template_encode_start_idx


def tiny_qwen_tokenizer():
    """A Qwen2Tokenizer in which each word of the pipelines' prompt templates is one token
    (``tiny_parts.template_tokenizer``)."""
    return template_tokenizer((T2I_TEMPLATE, EDIT_TEMPLATE, EXTRA_TEXT), QWEN_SPECIALS, model_max_length=131072)


def tiny_qwen_text_encoder(tokenizer, seed: int = TINY_SEED):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in QWEN_SPECIALS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2], "rope_type": "default"},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": 32,
            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
            "fullatt_block_indexes": [1], "tokens_per_second": 2,
        },
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    seeded(seed)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def tiny_qwen_transformer(seed: int = TINY_SEED):
    from diffusers import QwenImageTransformer2DModel

    seeded(seed)
    return QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, guidance_embeds=False, axes_dims_rope=(4, 6, 6),
    ).eval()


def tiny_qwen_vae(seed: int = TINY_SEED):
    from diffusers import AutoencoderKLQwenImage

    seeded(seed)
    return AutoencoderKLQwenImage(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                                  temperal_downsample=[False, True, True]).eval()


def _components(seed: int) -> dict:
    from diffusers import FlowMatchEulerDiscreteScheduler

    tokenizer = tiny_qwen_tokenizer()
    return {"scheduler": FlowMatchEulerDiscreteScheduler.from_config(QWEN_SCHEDULER_CONFIG),
            "vae": tiny_qwen_vae(seed), "text_encoder": tiny_qwen_text_encoder(tokenizer, seed),
            "tokenizer": tokenizer, "transformer": tiny_qwen_transformer(seed)}


def build(seed: int = TINY_SEED):
    """QwenImagePipeline (text-to-image): 64x64, 3 steps with true CFG in about a tenth of a second."""
    from diffusers import QwenImagePipeline

    return QwenImagePipeline(**_components(seed))


def build_edit(seed: int = TINY_SEED):
    """QwenImageEditPlusPipeline (Qwen-Image-Edit-2509 / 2511's class) with the same weights as ``build(seed)``
    and the VL processor. Edit pipelines encode the input image at about 1024x1024 whatever the output size, so
    a tiny edit takes seconds, not a fraction of one."""
    from diffusers import QwenImageEditPlusPipeline

    parts = _components(seed)
    return QwenImageEditPlusPipeline(**parts, processor=qwen_processor(parts["tokenizer"]))


def template_prefix_tokens(tokenizer=None) -> dict[str, int]:
    """How many tokens each template's system prefix takes (the pipelines drop DROPPED of them)."""
    tokenizer = tokenizer or tiny_qwen_tokenizer()
    return {name: len(tokenizer(template.split("{}")[0]).input_ids)
            for name, template in (("t2i", T2I_TEMPLATE), ("edit", EDIT_TEMPLATE))}
