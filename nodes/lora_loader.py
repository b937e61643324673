"""LoRA Loader (LoRA Deck): a LoRA stack on ComfyUI's own MODEL and CLIP, for Load Checkpoint -> KSampler graphs.

Files are found, read, checked, converted and fitted by LoRA Deck (as Load LoRA does: hash relinking, trust
checks, every format, refusal of partial loads, DoRA as peft computes it), against a mirror of ComfyUI's model
under diffusers' names (native/mirror.py). The result goes into ComfyUI through its own patch API
(``ModelPatcher.add_patches``), so ComfyUI's caching, model management and samplers work as with its LoRA loader.
"""

from __future__ import annotations

from ..core.api import PipelineHandle
from ..core.stacks import weights_text
from . import host, stacking
from .common import CATEGORY, LORA_STACK, TRIGGER_WORDS_TIP, node_id
from .lora_list import ROWS_TYPE, check_rows, entries, parse_rows, rows_stamp
from .native import graph, patches, state

HIDDEN = {"unique_id": "UNIQUE_ID", "api_prompt": "PROMPT"}
WEIGHTS_TIP = ("Optional, as Set Adapter Weights reads it, one adapter per line by name: block weights "
               "('style: lbw=1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1', 'style: down=0.5', 'flux_lora: "
               "transformer_blocks.0-5=0.5'), strengths per part ('detail: model=0.6, clip=0.3') or 'old: off'. "
               "Schedules over the steps need LoRA Deck's Generate.")


class LoRALoader:
    NODE_ID = node_id("LoRALoader")
    DISPLAY_NAME = "LoRA Loader (LoRA Deck)"
    DESCRIPTION = ("Applies LoRAs to ComfyUI's MODEL and CLIP (from Load Checkpoint; on to KSampler), one row each, "
                   "after any LORA_STACK. LoRA Deck reads and checks the files (every format it knows, PEFT and "
                   "DoRA as peft computes them, hash relinking, no partial loads) and ComfyUI applies them.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "CLIP", "STRING")  # outputs are only ever appended
    RETURN_NAMES = ("model", "clip", "trigger_words")
    OUTPUT_TOOLTIPS = ("The diffusion model with the LoRAs (connect it to KSampler).",
                       "The text encoders with the LoRAs (connect them to CLIP Text Encode).", TRIGGER_WORDS_TIP)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "ComfyUI's diffusion model (Load Checkpoint's MODEL)."}),
            "clip": ("CLIP", {"tooltip": "ComfyUI's text encoders (Load Checkpoint's CLIP)."}),
            "loras": (ROWS_TYPE, {"default": "[]", "choices": host.lora_names(), "tooltip":
                                  "The LoRA rows: file, strengths, on/off. Rows that are off are kept in the workflow "
                                  "but not loaded."}),
        }, "optional": {
            "lora_stack": (LORA_STACK, {"tooltip": "A LORA_STACK from another node (LoRA List, Efficiency, "
                                                   "Comfyroll, ...); applied before the rows."}),
            "weights": ("STRING", {"multiline": True, "default": "", "tooltip": WEIGHTS_TIP}),
        }, "hidden": dict(HIDDEN)}

    @classmethod
    def VALIDATE_INPUTS(cls, loras):
        return check_rows(loras)

    @classmethod
    def IS_CHANGED(cls, loras, **_):
        return rows_stamp(loras)

    def load(self, model, clip, loras: str, lora_stack=None, weights: str = "", unique_id=None, api_prompt=None):
        runtime = host.runtime()
        native = state.of(runtime)
        target = native.targets.get(model.model, clip.cond_stage_model, lambda: host.comfy_models(model, clip),
                                    runtime)
        chosen = stacking.incoming(lora_stack) + entries(parse_rows(loras))
        handle, ui, words = stacking.add_all(PipelineHandle(target.owner), chosen)
        stack = weights_text.apply_text(handle.stack, weights or "", target.family, target.owner.block_rule)
        fitted = [(spec, target.owner.prepare(spec.path, spec.sha256)) for spec in stack.adapters]
        groups = patches.groups(target.mirror, fitted, target.owner.block_rule)
        model_out, clip_out = host.add_comfy_patches(model, clip, groups)
        if unique_id is not None and isinstance(api_prompt, dict):
            native.applied.remember(graph.signature(api_prompt, unique_id), stack, target.family)
        return {"ui": ui, "result": (model_out, clip_out, words)}
