from __future__ import annotations

from . import host, records
from .common import (
    CATEGORY,
    PIPELINE,
    TRIGGER_WORDS_TIP,
    file_stamp,
    has_preview,
    node_id,
    pipeline_input,
    strength_input,
    validate_lora_name,
)

HIGH_TIP = "The high-noise LoRA file (e.g. ..._HIGH, ..._high_noise): goes into transformer, the high-noise expert."
LOW_TIP = "The low-noise LoRA file (e.g. ..._LOW, ..._low_noise): goes into transformer_2, the low-noise expert."


class LoadLoRAPair:
    NODE_ID = node_id("LoadLoRAPair")
    DISPLAY_NAME = "Load LoRA Pair (high/low noise)"
    DESCRIPTION = ("Adds a Wan 2.2 LoRA pair as ONE adapter: the high-noise file into the high-noise expert "
                   "(transformer), the low-noise file into the low-noise expert (transformer_2), each with its own "
                   "strength. Set Adapter Weights changes them by the adapter's name (transformer=..., "
                   "transformer_2=...). Needs a two-expert model (Wan 2.2 A14B); both files are checked here.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE, "STRING", "STRING")
    RETURN_NAMES = ("pipeline", "info", "trigger_words")
    OUTPUT_TOOLTIPS = ("The pipeline with the pair added to its stack (one adapter).",
                       "What each file matched in its expert (modules per component).", TRIGGER_WORDS_TIP)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        names = host.lora_names()
        return {
            "required": {
                "pipeline": pipeline_input(),
                "lora_name_high": (names, {"tooltip": HIGH_TIP}),
                "lora_name_low": (names, {"tooltip": LOW_TIP}),
                "strength_high": strength_input("Strength in the high-noise expert (transformer): the first "
                                                "steps, the layout and motion. 0 = off, 1 = as trained."),
                "strength_low": strength_input("Strength in the low-noise expert (transformer_2): the last steps, "
                                               "the details. 0 = off, 1 = as trained."),
            },
            "optional": {
                "adapter_name": ("STRING", {
                    "default": "",
                    "tooltip": "Name used by Set Adapter Weights and Fuse LoRA. Empty = what the two file names "
                               "share (x_HIGH + x_LOW -> x)."}),
            },
            "hidden": dict(records.HIDDEN),
        }

    @classmethod
    def VALIDATE_INPUTS(cls, lora_name_high, lora_name_low):
        for what, name in (("lora_name_high", lora_name_high), ("lora_name_low", lora_name_low)):
            verdict = validate_lora_name(name)
            if verdict is not True:
                return f"{what}: {verdict}"
        return True

    @classmethod
    def IS_CHANGED(cls, lora_name_high, lora_name_low, unique_id=None, extra_pnginfo=None, **_):
        recorded = records.recorded_hashes(extra_pnginfo, unique_id)
        stamps = []
        for name in (lora_name_high, lora_name_low):
            try:
                stamps.append(file_stamp(host.locate_lora(name, recorded.get(name, ())).path))
            except Exception:  # reported properly when the node runs
                stamps.append("unresolved")
        return "|".join(stamps)

    def load(self, pipeline, lora_name_high: str, lora_name_low: str, strength_high: float, strength_low: float,
             adapter_name: str = "", unique_id=None, extra_pnginfo=None):
        recorded = records.recorded_hashes(extra_pnginfo, unique_id)
        high = host.locate_lora(lora_name_high, recorded.get(lora_name_high, ()))
        low = host.locate_lora(lora_name_low, recorded.get(lora_name_low, ()))
        adapter, (high_report, low_report) = pipeline.owner.describe_pair(
            high.path, low.path, adapter_name, strength_high, strength_low)
        stack = pipeline.stack.add(adapter)
        added = stack.adapters[-1]
        entries = [(lora_name_high, high, added, high_report),
                   (lora_name_low, low, records.part_view(added, 0), low_report)]
        ui = records.loader_ui(entries, has_preview, host.in_comfyui_lists)
        info = "\n".join(ui["loradeck_info"])
        return {"ui": ui, "result": (pipeline.with_stack(stack), info,
                                     records.trigger_words([high_report, low_report]))}
