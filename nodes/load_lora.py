from __future__ import annotations

from . import host, records
from .common import (
    CATEGORY,
    PIPELINE,
    STRENGTH_CLIP_TIP,
    STRENGTH_MODEL_TIP,
    TRIGGER_WORDS_TIP,
    file_stamp,
    has_preview,
    node_id,
    pipeline_input,
    strength_input,
    validate_lora_name,
)


class LoadLoRA:
    NODE_ID = node_id("LoadLoRA")
    DISPLAY_NAME = "Load LoRA (LoRA Deck)"  # ComfyUI's own LoraLoader is "Load LoRA": search lists both
    DESCRIPTION = ("Adds one LoRA file to the pipeline's stack with separate strengths for the denoiser and the "
                   "text encoders. The file is checked against the pipeline here; a wrong base model is refused "
                   "with the pipeline untouched.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE, "STRING", "STRING")  # outputs are only ever appended: saved links use slot numbers
    RETURN_NAMES = ("pipeline", "info", "trigger_words")
    OUTPUT_TOOLTIPS = ("The pipeline with this LoRA added to its stack.",
                       "What the file matched in this pipeline (modules per component).", TRIGGER_WORDS_TIP)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pipeline": pipeline_input(),
                "lora_name": (host.lora_names(), {"tooltip": "A .safetensors LoRA file from your loras folder."}),
                "strength_model": strength_input(STRENGTH_MODEL_TIP),
                "strength_clip": strength_input(STRENGTH_CLIP_TIP),
            },
            "optional": {
                "adapter_name": ("STRING", {
                    "default": "",
                    "tooltip": "Name used by Set Adapter Weights and Fuse LoRA. Empty = the file name."}),
            },
            "hidden": dict(records.HIDDEN),  # to read the hashes recorded with this node in a shared workflow
        }

    @classmethod
    def VALIDATE_INPUTS(cls, lora_name):
        # Only the name: ComfyUI repeats a failure once per argument taken here. Names from another machine
        # were already pointed at local files by their recorded hashes (records.localize, before validation).
        verdict = validate_lora_name(lora_name)
        return True if verdict is True else f"lora_name: {verdict}"

    @classmethod
    def IS_CHANGED(cls, lora_name, unique_id=None, extra_pnginfo=None, **_):
        try:
            hashes = records.recorded_hashes(extra_pnginfo, unique_id).get(lora_name, ())
            return file_stamp(host.locate_lora(lora_name, hashes).path)
        except Exception:  # reported properly when the node runs
            return "unresolved"

    def load(self, pipeline, lora_name: str, strength_model: float, strength_clip: float, adapter_name: str = "",
             unique_id=None, extra_pnginfo=None):
        hashes = records.recorded_hashes(extra_pnginfo, unique_id).get(lora_name, ())
        found = host.locate_lora(lora_name, hashes)
        adapter, report = pipeline.owner.describe(found.path, adapter_name, strength_model, strength_clip)
        stack = pipeline.stack.add(adapter)
        entry = (lora_name, found, stack.adapters[-1], report)
        ui = records.loader_ui([entry], has_preview, host.in_comfyui_lists)
        info = "\n".join(ui["loradeck_info"])  # match report, base model, trigger words, title
        return {"ui": ui, "result": (pipeline.with_stack(stack), info, records.trigger_words([report]))}
