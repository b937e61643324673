"""Krea 2 single files: none loaded yet, but recognised, so a Krea 2 checkpoint is named instead of "unknown".

ComfyUI's Krea 2 denoiser (krea/Krea-2-Raw ``raw.safetensors``, Krea-2-Turbo ``turbo.safetensors``: original
keys, bare or under ``model.diffusion_model.``) comes without its text encoder (Qwen3-VL-4B in the HF layout), its
tokenizer (Qwen2) and its VAE (the Qwen-Image VAE in the Wan 2.1 layout), none of which the single-file machinery
(core/models/parts.py, tokenizers.py, build.py) reads yet; Raw and Turbo have the same keys, and only a diffusers
folder's ``model_index.json`` (``is_distilled``) tells them apart. Krea 2 loads from a diffusers folder.
"""

ARCHS = ()
# diffusers' own detection key for Krea 2 (single_file_utils CHECKPOINT_KEY_NAMES["krea2"])
OTHER_VARIANTS = (("txtfusion.projector.weight", None,
                   "a Krea 2 model (load Krea-2-Raw or Krea-2-Turbo as a diffusers folder in models/diffusers)"),)
