from __future__ import annotations

from ..core.families import SCHEDULER_CHOICES as CHOICES
from ..core.generation import prompt_tags
from ..core.generation.grid import run_grid
from ..core.generation.grid_axes import check_axis
from ..core.models.schedulers import DEFAULT
from ..core.stacks.specs import GenerateParams
from . import host
from .common import CATEGORY, node_id, pipeline_input, sampling_inputs

AXIS_TIP = ("One kind of value per axis, values separated by | (or one per line):\n"
            "strength style: 0 | 0.5 | 1   (one adapter; any Set Adapter Weights value: model=1, clip=0, off, "
            "ramp(1, 0.2))\n"
            "adapters: none | style | detail | style + detail   (which of the named adapters are on)\n"
            "stacks: soft = style: 0.5; detail: off | strong = style: 1.2 | <lora:other:0.8>   (named stacks: "
            "weight lines separated by ;, LoRA tags add a file)\n"
            "Empty = no {which} axis.")
X_EXAMPLE = "strength style: 0 | 0.5 | 1"


class LoRAGrid:
    NODE_ID = node_id("LoRAGrid")
    DISPLAY_NAME = "LoRA Grid"
    DESCRIPTION = ("Compares LoRA configurations in ONE batched denoising pass: each cell of the X x Y grid is one "
                   "batch row running its own adapters (peft mixed-batch inference), with the same seed, so every "
                   "cell equals that configuration run alone through Generate. Falls back to one run per cell "
                   "(and says so) where a batch cannot do that, e.g. fused adapters that differ between cells.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "IMAGE", "STRING")
    RETURN_NAMES = ("grid", "cells", "text")
    OUTPUT_TOOLTIPS = ("The grid as one image, with the X values above and the Y values on the left.",
                       "Every cell as a batch of images, row by row.",
                       "What each cell is (adapters and strengths), and whether the grid ran batched.")
    FUNCTION = "grid"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pipeline": pipeline_input("The pipeline and the LoRA stack every cell starts from."),
            **sampling_inputs(seed="One seed for every cell, so the cells differ only by their LoRAs.",
                              steps="Denoising steps.", cfg="Classifier-free guidance scale.",
                              width="Cell width in pixels.", height="Cell height in pixels."),
            "x_axis": ("STRING", {"multiline": True, "default": X_EXAMPLE, "tooltip": AXIS_TIP.format(which="X")}),
            "y_axis": ("STRING", {"multiline": True, "default": "", "tooltip": AXIS_TIP.format(which="Y")}),
        }, "optional": {
            "scheduler": (list(CHOICES), {"default": DEFAULT, "tooltip": "The sampler/scheduler, as on Generate. "
                                          "DPM++ SDE (Karras) runs the cells one after another."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, prompt=None, x_axis=None, y_axis=None):
        """Queue time: the prompt's LoRA tags and the axes' syntax and tags (adapter names are checked against
        the stack when the node runs)."""
        locate = host.locate_lora
        problems = [prompt_tags.check(prompt, locate) if isinstance(prompt, str) else None,
                    check_axis(x_axis, "X", locate) if isinstance(x_axis, str) else None,
                    check_axis(y_axis, "Y", locate) if isinstance(y_axis, str) else None]
        return next((p for p in problems if p), True)

    def grid(self, pipeline, prompt, negative_prompt, seed, steps, cfg, width, height, x_axis, y_axis,
             scheduler=DEFAULT):
        params = GenerateParams(prompt, negative_prompt, seed, steps, cfg, width, height, 1, scheduler)
        result = run_grid(pipeline.owner, pipeline.stack, params, x_axis, y_axis, host.progress_reporter(steps),
                          host.locate_lora)
        return (result.grid, result.cells, result.text)
