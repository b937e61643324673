from __future__ import annotations

from ..core.errors import SpecError
from . import host, records
from .common import (
    CATEGORY,
    LORA_STACK,
    NONE_CHOICE,
    PIPELINE,
    STRENGTH_CLIP_TIP,
    STRENGTH_MODEL_TIP,
    file_stamp,
    node_id,
    pipeline_input,
    strength_input,
    validate_lora_name,
)

SLOTS = 4


class StackLoRA:
    NODE_ID = node_id("StackLoRA")
    DISPLAY_NAME = "Stack LoRAs"
    DESCRIPTION = ("Adds up to four LoRAs at once (each with an on/off switch), after any LORA_STACK from other "
                   "packs. Also outputs the combined LORA_STACK list.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE, LORA_STACK)
    RETURN_NAMES = ("pipeline", "lora_stack")
    OUTPUT_TOOLTIPS = ("The pipeline with these LoRAs added.",
                       "(lora_name, strength_model, strength_clip) for every LoRA added here, incoming ones first.")
    FUNCTION = "stack"

    @classmethod
    def INPUT_TYPES(cls):
        names = [NONE_CHOICE, *host.lora_names()]
        required = {"pipeline": pipeline_input()}
        for i in range(1, SLOTS + 1):
            required[f"enabled_{i}"] = ("BOOLEAN", {"default": True, "tooltip": f"Use LoRA slot {i}."})
            required[f"lora_name_{i}"] = (names, {"default": NONE_CHOICE, "tooltip": f"LoRA file for slot {i}."})
            required[f"strength_model_{i}"] = strength_input(STRENGTH_MODEL_TIP)
            required[f"strength_clip_{i}"] = strength_input(STRENGTH_CLIP_TIP)
        return {"required": required, "optional": {"lora_stack": (LORA_STACK, {
            "tooltip": "A LORA_STACK from another node (Efficiency, Comfyroll, ...); applied before the slots."})},
            "hidden": dict(records.HIDDEN)}

    @classmethod
    def VALIDATE_INPUTS(cls, lora_name_1=NONE_CHOICE, lora_name_2=NONE_CHOICE, lora_name_3=NONE_CHOICE,
                        lora_name_4=NONE_CHOICE, unique_id=None, extra_pnginfo=None):
        recorded = records.recorded_hashes(extra_pnginfo, unique_id)
        problems = []  # every slot's, one line each: a workflow is fixed in one pass
        for i, name in enumerate((lora_name_1, lora_name_2, lora_name_3, lora_name_4), start=1):
            verdict = True if name == NONE_CHOICE else validate_lora_name(name, recorded.get(name, ()))
            if verdict is not True:
                problems.append(f"lora_name_{i}: {verdict}")
        return "\n".join(problems) or True

    @classmethod
    def IS_CHANGED(cls, unique_id=None, extra_pnginfo=None, **kwargs):
        recorded = records.recorded_hashes(extra_pnginfo, unique_id)
        stamps = []
        for i in range(1, SLOTS + 1):
            name = kwargs.get(f"lora_name_{i}", NONE_CHOICE)
            if name != NONE_CHOICE and kwargs.get(f"enabled_{i}", True):
                try:
                    stamps.append(file_stamp(host.locate_lora(name, recorded.get(name, ())).path))
                except Exception:
                    stamps.append("unresolved")
        return ",".join(stamps)

    @staticmethod
    def entries(kwargs, lora_stack) -> list[tuple[str, float, float]]:
        items = []
        for item in lora_stack or []:
            if not isinstance(item, (list, tuple)) or len(item) < 3:
                raise SpecError(f"lora_stack: expected (lora_name, strength_model, strength_clip), got {item!r}")
            items.append((str(item[0]), float(item[1]), float(item[2])))
        for i in range(1, SLOTS + 1):
            name = kwargs.get(f"lora_name_{i}", NONE_CHOICE)
            if kwargs.get(f"enabled_{i}", True) and name and name != NONE_CHOICE:
                items.append((name, kwargs[f"strength_model_{i}"], kwargs[f"strength_clip_{i}"]))
        return items

    def stack(self, pipeline, lora_stack=None, unique_id=None, extra_pnginfo=None, **slots):
        entries = self.entries(slots, lora_stack)
        recorded = records.recorded_hashes(extra_pnginfo, unique_id)
        stack, loaded = pipeline.stack, []
        for name, strength_model, strength_clip in entries:
            path = host.locate_lora(name, recorded.get(name, ())).path
            adapter, report = pipeline.owner.describe(path, None, strength_model, strength_clip)
            stack = stack.add(adapter)
            loaded.append((name, stack.adapters[-1], report))
        return {"ui": records.loader_ui(loaded), "result": (pipeline.with_stack(stack), entries)}
