from __future__ import annotations

import os

from ..core.adapters.save import MODES, save_stack
from . import records
from .common import CATEGORY, PIPELINE, node_id, pipeline_input
from .naming import save_path


class SaveLoRA:
    NODE_ID = node_id("SaveLoRA")
    DISPLAY_NAME = "Save LoRA Stack"
    DESCRIPTION = ("Writes the pipeline's active stack (with its weights, block weights included) to one "
                   ".safetensors file in diffusers' format under the output folder's loras/. 'separate' keeps "
                   "every adapter exactly (ranks side by side); 'merged' compresses the sum to one rank by SVD.")
    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    RETURN_TYPES = (PIPELINE, "STRING")
    RETURN_NAMES = ("pipeline", "info")
    OUTPUT_TOOLTIPS = ("The same pipeline, unchanged.", "Where the file went, its rank and the merge error.")
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pipeline": pipeline_input("The pipeline whose LoRA stack is saved."),
            "filename_prefix": ("STRING", {"default": "loradeck/stack", "tooltip":
                                           "File name under output/loras/; a number is appended."}),
            "mode": (list(MODES), {"default": "separate", "tooltip":
                                   "separate = exact (ranks concatenated); merged = one adapter of the given rank."}),
            "rank": ("INT", {"default": 32, "min": 1, "max": 4096, "tooltip": "Rank of the merged adapter."}),
        }, "hidden": dict(records.SOURCE_HIDDEN)}

    def save(self, pipeline, filename_prefix: str, mode: str, rank: int, unique_id=None, api_prompt=None):
        output = pipeline.owner.runtime.folders.output()
        folder, stem, counter = save_path(os.path.join(output, "loras"), filename_prefix, ".safetensors")
        name = f"{stem}_{counter:05}_.safetensors"
        report = save_stack(pipeline.owner, pipeline.stack, os.path.join(folder, name), mode, rank,
                            records.source_of(unique_id, api_prompt))
        # The file as ComfyUI's output nodes report theirs; the headless runner lists it with the images.
        written = {"filename": name, "subfolder": os.path.relpath(folder, output), "type": "output"}
        ui = {"loradeck_info": [report.text()], "loradeck_files": [written]}
        return {"ui": ui, "result": (pipeline, report.text())}
