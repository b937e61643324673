"""LoRA Deck on ComfyUI's own MODEL and CLIP: the pure parts of the LoRA Loader (LoRA Deck) node.

No ComfyUI import here (``nodes/host.py`` makes every ComfyUI call): ``mirror`` sees ComfyUI's diffusion model and
text encoders under diffusers' module names, from ComfyUI's own LoRA key maps; ``patches`` turns a stack of
adapters fitted to that mirror into the patches ComfyUI's ``ModelPatcher.add_patches`` takes.
"""
