from __future__ import annotations

from . import host, records, stacking
from .common import (
    CATEGORY,
    LORA_STACK,
    NONE_CHOICE,
    PIPELINE,
    STRENGTH_CLIP_TIP,
    STRENGTH_MODEL_TIP,
    TRIGGER_WORDS_TIP,
    file_stamp,
    node_id,
    pipeline_input,
    strength_input,
    validate_lora_name,
)

SLOTS = 4


UNUSABLE = "not a usable LoRA name"  # core.files' wording for a name that can never be a file


class StackLoRA:
    NODE_ID = node_id("StackLoRA")
    DISPLAY_NAME = "Stack LoRAs"
    DESCRIPTION = ("Adds up to four LoRAs at once (each with an on/off switch), after any LORA_STACK from other "
                   "packs. Also outputs the combined LORA_STACK list. Kept for older workflows: LoRA List takes "
                   "any number of rows.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE, LORA_STACK, "STRING")  # outputs are only ever appended
    RETURN_NAMES = ("pipeline", "lora_stack", "trigger_words")
    OUTPUT_TOOLTIPS = ("The pipeline with these LoRAs added.",
                       "(lora_name, strength_model, strength_clip) for every LoRA added here, incoming ones first.",
                       TRIGGER_WORDS_TIP)
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
                        lora_name_4=NONE_CHOICE):
        # Naming the four names here skips ComfyUI's "value not in list" check (which prints every LoRA on the
        # machine). ComfyUI repeats a failure returned here once per argument, so there only names that can never
        # be a file (control characters, symlink loops, FIFOs) are refused at queue time and a missing file is said
        # once, when the node runs; the headless runner says every problem before running anything (shared names
        # were already pointed at local files by records.localize in both).
        problems = []  # every slot's, one line each: a workflow is fixed in one pass
        for i, name in enumerate((lora_name_1, lora_name_2, lora_name_3, lora_name_4), start=1):
            verdict = True if name == NONE_CHOICE else validate_lora_name(name)
            if verdict is not True and (UNUSABLE in verdict or not host.IN_COMFYUI):
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
    def entries(kwargs, lora_stack) -> list[stacking.Entry]:
        """The incoming stack's entries, then each enabled slot's."""
        items = stacking.incoming(lora_stack)
        for i in range(1, SLOTS + 1):
            name = kwargs.get(f"lora_name_{i}", NONE_CHOICE)
            if kwargs.get(f"enabled_{i}", True) and name and name != NONE_CHOICE:
                items.append((f"slot {i}", name, kwargs[f"strength_model_{i}"], kwargs[f"strength_clip_{i}"], ()))
        return items

    def stack(self, pipeline, lora_stack=None, unique_id=None, extra_pnginfo=None, **slots):
        entries = self.entries(slots, lora_stack)
        recorded = records.recorded_hashes(extra_pnginfo, unique_id)
        handle, ui, words = stacking.add_all(pipeline, entries, lambda name: recorded.get(name, ()))
        stack_out = [(name, model, clip) for _, name, model, clip, _ in entries]
        return {"ui": ui, "result": (handle, stack_out, words)}
