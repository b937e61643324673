from __future__ import annotations

from ..core.stacks import weights_text
from .common import CATEGORY, PIPELINE, node_id, pipeline_input

EXAMPLE = "# one adapter per line:\n# style: 0.8\n# detail: model=0.6, clip=0.3\n# old: off\n"


class SetAdapterWeights:
    NODE_ID = node_id("SetAdapterWeights")
    DISPLAY_NAME = "Set Adapter Weights"
    DESCRIPTION = ("Changes the strengths of adapters already in the stack, by name, one per line. Only a scale "
                   "changes: no file is read and nothing reloads.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE,)
    RETURN_NAMES = ("pipeline",)
    OUTPUT_TOOLTIPS = ("The pipeline with the new weights.",)
    FUNCTION = "set_weights"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pipeline": pipeline_input(),
            "weights": ("STRING", {
                "multiline": True,
                "default": EXAMPLE,
                "tooltip": "One adapter per line: 'name: 0.8' (all parts), 'name: model=0.6, clip=0.3', "
                           "'name: unet=0.5, text_encoder=0.2', or 'name: off' / 'name: on'. # starts a comment."}),
        }}

    def set_weights(self, pipeline, weights: str):
        owner = pipeline.owner
        stack = weights_text.apply_text(pipeline.stack, weights, owner.family, owner.block_rule)
        return (pipeline.with_stack(stack),)
