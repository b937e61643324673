"""Sana: a linear-attention DiT (``SanaTransformer2DModel``) with a Gemma 2 text encoder and a deep-compression
autoencoder (``AutoencoderDC``, 32x).

diffusers' loader takes the transformer only. Its own scheduler is DPM-Solver++ on flow sigmas (shift
``flow_shift``); the table's schedulers take that shift too. Split files (``single_file.py``): a Sana 1.0 denoiser in
NVlabs' original names as .safetensors (its ``.pth`` originals are refused), the Gemma 2 encoder in ComfyUI's layout,
the DC-AE in mit-han-lab's names; ``names.py`` maps the original names (also for LoRA files in them).
"""

from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import names, single_file, tiny
from .generate import call
from .schedulers import SCHEDULERS

FAMILY = Family(
    key="sana", title="Sana", pipeline_classes=("SanaPipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-sana", blocks=RANGES, schedulers=SCHEDULERS, call=call,
    single_files=single_file.ARCHS, other_variants=single_file.OTHER_VARIANTS,
    original_names=names.sana_names,
    # its Mix-FFN (GLUMBConv) layers; its attention is attn1 / attn2 under transformer_blocks, as in UNets
    lora_markers=(("conv_inverted", "Sana"), ("conv_point", "Sana"), ("conv_depth", "Sana")),
    patch="patch_size",
)
