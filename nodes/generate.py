from __future__ import annotations

from ..core.generate import generate
from ..core.specs import GenerateParams
from . import host, records
from .common import CATEGORY, node_id, pipeline_input

MAX_SEED = 0xFFFFFFFFFFFFFFFF


class Generate:
    NODE_ID = node_id("Generate")
    DISPLAY_NAME = "Generate (LoRA Deck)"
    DESCRIPTION = ("Applies the pipeline's LoRA stack and generates images. Same seed, same stack, same images, "
                   "on any machine with the same files.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Generated images (connect to Save Image or Preview Image).",)
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pipeline": pipeline_input("The pipeline and LoRA stack to generate with."),
            "prompt": ("STRING", {"multiline": True, "default": "a photo of a cat",
                                  "tooltip": "What to generate."}),
            "negative_prompt": ("STRING", {"multiline": True, "default": "",
                                           "tooltip": "What to steer away from (used when cfg > 1)."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                             "tooltip": "Random seed; the CPU generator makes it reproducible everywhere."}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 1000, "tooltip": "Denoising steps (diffusers' "
                                                                                 "schedulers take at most 1000)."}),
            "cfg": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                              "tooltip": "Classifier-free guidance scale: how closely to follow the prompt."}),
            "width": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8, "tooltip": "Image width in pixels."}),
            "height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8,
                               "tooltip": "Image height in pixels."}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Images per run."}),
        }, "hidden": dict(records.SOURCE_HIDDEN)}  # the panel shows each Generate's stack

    def generate(self, pipeline, prompt, negative_prompt, seed, steps, cfg, width, height, batch_size,
                 unique_id=None, api_prompt=None):
        params = GenerateParams(prompt, negative_prompt, seed, steps, cfg, width, height, batch_size)
        source = records.source_of(unique_id, api_prompt)
        images = generate(pipeline.owner, pipeline.stack, params, host.progress_reporter(steps), *source)
        return (images,)
