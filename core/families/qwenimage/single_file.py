"""Qwen-Image single-file checkpoints: recognised, not loaded yet.

Comfy-Org's ``qwen_image*.safetensors`` / ``qwen_image_edit*.safetensors`` hold the transformer under diffusers'
own names (``transformer_blocks.0.img_mod.1.weight``; sometimes prefixed ``model.diffusion_model.``), which
diffusers' ``QwenImageTransformer2DModel.from_single_file`` reads as they are. What a single-file load also needs
is not in the file and not in LoRA Deck's single-file machinery yet: the Qwen2.5-VL-7B text encoder
(``qwen_2.5_vl_7b.safetensors``, original Qwen2.5-VL names: ``model.layers.*`` -> transformers'
``model.language_model.layers.*``, ``visual.*`` -> ``model.visual.*``), its Qwen2 tokenizer (ComfyUI's
``comfy/text_encoders/qwen25_tokenizer``), and the VAE in the Wan 2.1 layout (``qwen_image_vae.safetensors``:
diffusers' ``convert_wan_vae_to_diffusers``, loaded into ``AutoencoderKLQwenImage``). Until then such a file is
named, and the user pointed to a diffusers folder. The Edit models' files have the same keys and shapes as the
text-to-image one (Edit-2511's add ``__index_timestep_zero__``: diffusers' ``zero_cond_t``).
"""

OTHER_VARIANTS = (
    ("transformer_blocks.0.img_mod.1.weight", None, "a Qwen-Image or Qwen-Image-Edit transformer (Qwen-Image "
     "loads from its diffusers folder)"),
)
