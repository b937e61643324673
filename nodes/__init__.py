"""The node classes and their registration tables (node IDs are frozen public API)."""

from . import host
from .compile import CompilePipeline
from .fuse import FuseLoRA, UnfuseLoRA
from .generate import Generate
from .grid import LoRAGrid
from .load_diffusion_model import LoadDiffusionModel
from .load_lora import LoadLoRA
from .load_lora_pair import LoadLoRAPair
from .load_pipeline import LoadPipeline
from .lora_list import LoRAList
from .lora_loader import LoRALoader
from .save_image import SaveImage
from .save_lora import SaveLoRA
from .set_weights import SetAdapterWeights
from .stack_lora import StackLoRA

NODES = (LoadPipeline, LoadLoRA, StackLoRA, LoRAList, SetAdapterWeights, FuseLoRA, UnfuseLoRA, Generate, SaveLoRA,
         LoRAGrid, SaveImage, CompilePipeline, LoadLoRAPair, LoRALoader, LoadDiffusionModel)

NODE_CLASS_MAPPINGS = {cls.NODE_ID: cls for cls in NODES}
NODE_DISPLAY_NAME_MAPPINGS = {cls.NODE_ID: cls.DISPLAY_NAME for cls in NODES}

if host.IN_COMFYUI:
    import os

    from .comfy_server import attach_to_comfyui

    docs = (os.path.basename(host.PACK_DIR), os.path.join(host.PACK_DIR, "web", "docs"), tuple(NODE_CLASS_MAPPINGS))
    attach_to_comfyui(host.runtime(), host.locate_lora, docs, host.in_comfyui_lists)
