from __future__ import annotations

from ..core.stacks import stack_ops
from .common import CATEGORY, PIPELINE, node_id, pipeline_input

COMPONENTS_TIP = ("Comma-separated components to fuse in, e.g. unet or text_encoder (model = the denoiser, clip = "
                  "the text encoders). Empty = all. The others keep the adapters active, unfused.")


class FuseLoRA:
    NODE_ID = node_id("FuseLoRA")
    DISPLAY_NAME = "Fuse LoRA"
    DESCRIPTION = ("Bakes adapters into the model weights (faster generation). The original weights are kept, so "
                   "Unfuse LoRA restores them exactly. Adapters not named stay active, unfused.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE,)
    RETURN_NAMES = ("pipeline",)
    OUTPUT_TOOLTIPS = ("The pipeline with the chosen adapters fused.",)
    FUNCTION = "fuse"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pipeline": pipeline_input(),
                "lora_scale": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                                         "tooltip": "Multiplies the fused adapters' strengths."}),
                "safe_fusing": ("BOOLEAN", {"default": True, "tooltip":
                                            "Check fused weights for NaN/inf and refuse (changing nothing) if found."}),
            },
            "optional": {
                "adapter_names": ("STRING", {"default": "", "tooltip":
                                             "Comma-separated adapter names to fuse. Empty = all enabled adapters."}),
                "components": ("STRING", {"default": "", "tooltip": COMPONENTS_TIP}),
            },
        }

    def fuse(self, pipeline, lora_scale: float, safe_fusing: bool, adapter_names: str = "", components: str = ""):
        names = stack_ops.parse_names(adapter_names)
        chosen = stack_ops.components_of(components, pipeline.owner.family)
        return (pipeline.with_stack(stack_ops.fuse(pipeline.stack, lora_scale, names, safe_fusing, chosen)),)


class UnfuseLoRA:
    NODE_ID = node_id("UnfuseLoRA")
    DISPLAY_NAME = "Unfuse LoRA"
    DESCRIPTION = "Un-bakes fused adapters: the original weights come back bit for bit; adapters stay active."
    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE,)
    RETURN_NAMES = ("pipeline",)
    OUTPUT_TOOLTIPS = ("The pipeline with every adapter unfused.",)
    FUNCTION = "unfuse"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"pipeline": pipeline_input()}}

    def unfuse(self, pipeline):
        return (pipeline.with_stack(stack_ops.unfuse(pipeline.stack)),)
