from __future__ import annotations

from ..core.families import SCHEDULER_CHOICES as CHOICES
from ..core.generation import prompt_tags
from ..core.generation.generate import run
from ..core.models.schedulers import DEFAULT
from ..core.stacks.specs import GenerateParams
from . import host, records
from .common import CATEGORY, node_id, pipeline_input, sampling_inputs


class Generate:
    NODE_ID = node_id("Generate")
    DISPLAY_NAME = "Generate (LoRA Deck)"
    DESCRIPTION = ("Applies the pipeline's LoRA stack and generates images: text-to-image, img2img (connect an "
                   "image) or inpainting (an image and a mask). The same seed and stack give the same images (the "
                   "noise comes from a CPU generator; other hardware or thread counts can change pixels by rounding).")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("images", "parameters")
    OUTPUT_TOOLTIPS = ("Generated images (connect to Save Image or Preview Image).",
                       "The A1111 parameters text of the images (prompt, settings, Lora hashes), as Save Image "
                       "(LoRA Deck) writes it.")
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pipeline": pipeline_input("The pipeline and LoRA stack to generate with."),
            **sampling_inputs(
                seed="Random seed; the CPU generator makes it reproducible everywhere.",
                steps="Denoising steps (diffusers' schedulers take at most 1000).",
                cfg="Classifier-free guidance scale: how closely to follow the prompt.",
                width="Image width in pixels (text-to-image; with an image the output has the image's size).",
                height="Image height in pixels (text-to-image; with an image the output has the image's size)."),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64,
                                   "tooltip": "Images per run (per input image: must be 1 for an image batch)."}),
        }, "optional": {
            "scheduler": (list(CHOICES), {"default": DEFAULT, "tooltip": (
                "The sampler/scheduler. 'model default' keeps the pipeline's own. Euler ... LCM fit SD 1.x/2.x "
                "and SDXL; FlowMatch Euler/Heun, DPM++ 2M and UniPC (text-to-image only) fit SD3 and Flux "
                "(no FlowMatch Heun on Flux); aMUSEd takes its own only. A misfit is reported by name.")}),
            "image": ("IMAGE", {"tooltip": "Start from this image (img2img; with a mask, inpainting). The output "
                                           "has its size, centre-cropped to the model's 8/16-pixel grid. On FLUX.2 "
                                           "(no img2img in diffusers) an image without a mask is the reference of an "
                                           "edit (every image of the batch; denoise 1)."}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": (
                "With an image: how much to change it (diffusers' strength; about steps x denoise steps run). "
                "0.3 keeps the picture, 1.0 repaints it. Text-to-image needs 1.0.")}),
            "mask": ("MASK", {"tooltip": "Inpainting: white (1) is repainted, black kept. Needs the image; resized "
                                         "to it if the sizes differ (as ComfyUI does). E.g. Load Image's MASK."}),
        }, "hidden": dict(records.SOURCE_HIDDEN)}  # the panel shows each Generate's stack

    @classmethod
    def VALIDATE_INPUTS(cls, prompt=None):
        """Queue time: every <lora:...> tag in the prompt names a file that is there (a linked prompt is
        checked when the node runs)."""
        if not isinstance(prompt, str):
            return True
        return prompt_tags.check(prompt, host.locate_lora) or True

    def generate(self, pipeline, prompt, negative_prompt, seed, steps, cfg, width, height, batch_size,
                 scheduler=DEFAULT, image=None, denoise=1.0, mask=None, unique_id=None, api_prompt=None):
        params = GenerateParams(prompt, negative_prompt, seed, steps, cfg, width, height, batch_size, scheduler,
                                denoise)
        source, title = records.source_of(unique_id, api_prompt)
        made = run(pipeline.owner, pipeline.stack, params, host.progress_reporter(steps), image, mask,
                   host.locate_lora, source, title)
        return (made.images, made.parameters)
