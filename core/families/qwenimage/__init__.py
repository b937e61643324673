"""Qwen-Image and Qwen-Image-Edit: a dual-stream MMDiT (``QwenImageTransformer2DModel``), a Qwen2.5-VL text
encoder and a Wan-2.1-style VAE.

Qwen-Image-Edit (and Edit-2509 / 2511, diffusers' QwenImageEditPlusPipeline) are edit models: an image given to
them is the image to edit by the prompt, in their own class, and an image with a mask is edited inside the mask
(QwenImageEditInpaintPipeline, which makes its output at about one megapixel in the image's aspect ratio, whatever
the image's size); a Qwen-Image (text-to-image) model takes an image as img2img and with a mask inpaints. Both
share one transformer architecture, so a LoRA for one loads on the other.

LoRAs train the transformer only: diffusers' loader takes nothing else, and no Qwen trainer writes a text-encoder
LoRA. Trainers and ComfyUI name modules as diffusers does (no fused layers, no original-name table).
"""

from dataclasses import replace

from ...models.family import Family
from ...stacks.block_weights import RANGES
from . import single_file, tiny
from .generate import call
from .processor import file_components, folder_components
from .schedulers import SCHEDULERS

FAMILY = Family(
    key="qwenimage", title="Qwen-Image",
    pipeline_classes=("QwenImagePipeline",),
    denoiser="transformer", text_encoders=("text_encoder",),
    kohya_prefixes=(("lora_unet_", "transformer"),),
    tiny=tiny.build, builtin="tiny-qwenimage", blocks=RANGES, schedulers=SCHEDULERS, call=call,
    single_files=single_file.ARCHS, other_variants=single_file.OTHER_VARIANTS, original_names=None,
    # Flux's BFL names are img_mlp.0 / img_mod.lin; Qwen's are img_mlp.net.* / img_mod.1, dotted or flattened
    lora_markers=(("img_mlp.net", "Qwen-Image"), ("img_mlp_net", "Qwen-Image"), ("txt_mlp.net", "Qwen-Image"),
                  ("txt_mlp_net", "Qwen-Image"), ("img_mod.1", "Qwen-Image"), ("img_mod_1", "Qwen-Image"),
                  ("txt_mod.1", "Qwen-Image"), ("txt_mod_1", "Qwen-Image")),
    img2img="QwenImageImg2ImgPipeline", inpaint="QwenImageInpaintPipeline", patch="patch_size",
    denoise_steps="rest", edit_models=("QwenImageEditPlusPipeline", "QwenImageEditPipeline"),
    edit_inpaint="QwenImageEditInpaintPipeline",
    folder_components=folder_components, file_components=file_components,
)
# the second built-in: the same family and weights in the Edit Plus class
EDIT_BUILTIN = replace(FAMILY, tiny=tiny.build_edit, builtin="tiny-qwenimage-edit")
