from __future__ import annotations

from dataclasses import replace

from ..core.stacks.specs import COMPILE_BACKENDS, COMPILE_MODES, COMPILE_TARGETS, CompileSpec
from .common import CATEGORY, PIPELINE, node_id, pipeline_input


class CompilePipeline:
    NODE_ID = node_id("CompilePipeline")
    DISPLAY_NAME = "Compile Pipeline"
    DESCRIPTION = ("Runs the denoiser under torch.compile, prepared for hotswap: switching, adding, removing, "
                   "reweighting, enabling and disabling LoRAs within the envelope (max_rank x max_adapters per "
                   "layer) never recompiles. The first Generate after it compiles (minutes on a CPU).")
    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE,)
    RETURN_NAMES = ("pipeline",)
    OUTPUT_TOOLTIPS = ("The pipeline, compiled when it next generates. LoRA nodes may come before or after it.",)
    FUNCTION = "compile"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pipeline": pipeline_input(),
            "mode": (list(COMPILE_MODES), {"default": "default", "tooltip":
                     "torch.compile mode (inductor only). reduce-overhead and max-autotune use CUDA graphs on a "
                     "GPU; default compiles fastest."}),
            "backend": (list(COMPILE_BACKENDS), {"default": "inductor", "tooltip":
                        "torch.compile backend. inductor makes fast kernels (needs a C++ compiler on the CPU); "
                        "aot_eager and eager compile quickly but do not speed anything up."}),
            "max_rank": ("INT", {"default": 64, "min": 1, "max": 4096, "tooltip":
                         "The largest LoRA rank to prepare for. A LoRA of higher rank still works: the denoiser "
                         "recompiles once (logged). DoRA/LoHa/LoKr need their layer's full width."}),
            "max_adapters": ("INT", {"default": 2, "min": 1, "max": 16, "tooltip":
                             "How many LoRAs may be active at once on one layer without recompiling. Each costs "
                             "compute on every targeted layer, used or not."}),
            "targets": (list(COMPILE_TARGETS), {"default": "linear", "tooltip":
                        "Layers prepared for LoRAs: linear = every Linear and 1x1 conv (attention, feed-forward, "
                        "projections), all = also the other convs (LoCon), loaded = only those the current LoRAs "
                        "touch (least compute; a LoRA touching others recompiles once)."}),
        }}

    def compile(self, pipeline, mode: str, backend: str, max_rank: int, max_adapters: int, targets: str):
        spec = CompileSpec(mode=mode, backend=backend, max_rank=int(max_rank), max_adapters=int(max_adapters),
                           targets=targets)
        return (pipeline.with_stack(replace(pipeline.stack, compile=spec)),)
