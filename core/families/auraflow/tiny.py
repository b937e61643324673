"""The built-in tiny AuraFlow pipeline ("tiny-auraflow").

The transformer keeps AuraFlow's layout (joint blocks, then single blocks, patch 2, register tokens) at 32 wide
(real: 3072, 4 joint + 32 single blocks); the text encoder is a 2-layer UMT5 (real: Pile-T5 XL, 2048 wide). An
untrained model's adaLN modulation is near zero (its time embedding is small), which gates every block to almost
nothing: the tiny one scales those layers up so that its blocks, and LoRAs on them, change the picture.
"""

from __future__ import annotations

from ...models.tiny_parts import TINY_SEED, flow_vae, seeded, tiny_t5_tokenizer

MODULATION = ("norm1.linear", "norm1_context.linear", "norm_out.linear")
MODULATION_GAIN = 16.0


def build(seed: int = TINY_SEED):
    import torch
    from diffusers import AuraFlowPipeline, AuraFlowTransformer2DModel, FlowMatchEulerDiscreteScheduler
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = tiny_t5_tokenizer()
    seeded(seed)
    transformer = AuraFlowTransformer2DModel(
        sample_size=64, patch_size=2, in_channels=4, num_mmdit_layers=1, num_single_dit_layers=2,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=32,
        out_channels=4, pos_embed_max_size=256,
    ).eval()
    with torch.no_grad():
        for name, module in transformer.named_modules():
            if name.endswith(MODULATION):
                module.weight.mul_(MODULATION_GAIN)
    seeded(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )).eval()
    return AuraFlowPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=flow_vae(4, seed),
                            transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler())
