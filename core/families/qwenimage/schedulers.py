"""The schedulers Qwen-Image takes, and its scheduler configs.

Its pipelines always pass custom sigmas (``linspace(1, 1/steps, steps)``) and a resolution-dependent shift (mu),
and, unlike FluxPipeline, never drop the sigmas for a solver with flow sigmas: FlowMatch Heun, diffusers' DPM
solvers, DEIS and DDIM refuse custom sigmas and the Euler (non-flow) scheduler refuses mu, so none of them runs.
UniPC with flow sigmas runs text-to-image and edits; img2img and inpainting noise the input with
``scheduler.scale_noise``, which only the FlowMatch schedulers have. FlowMatch LCM runs but draws fresh noise at
every step from torch's global generator (the pipelines do not pass theirs to ``scheduler.step``), so a seed would
not reproduce its image: it is not offered.

Qwen-Image-Lightning's LoRAs (ModelTC, distilled for 4 or 8 steps without CFG) were distilled with shift 3: their
README's diffusers example sets base_shift = max_shift = ln 3 (mu = ln 3 at every size: an exponential shift of 3)
and no terminal stretch. That is the "FlowMatch Euler shift 3 (Lightning)" entry; with it go 4 or 8 steps (the
LoRA's) and cfg 1.
"""

from __future__ import annotations

import math

from ...models.family import EDIT, TXT2IMG
from ...models.schedulers import FLOW_MATCH, FLOW_ONLY_TXT2IMG, Scheduler, entry, flow_sigmas

# Qwen/Qwen-Image scheduler/scheduler_config.json (the same in the Edit, Edit-2509 and Edit-2511 repos)
QWEN_SCHEDULER_CONFIG = {
    "base_image_seq_len": 256, "base_shift": 0.5, "invert_sigmas": False, "max_image_seq_len": 8192,
    "max_shift": 0.9, "num_train_timesteps": 1000, "shift": 1.0, "shift_terminal": 0.02,
    "stochastic_sampling": False, "time_shift_type": "exponential", "use_beta_sigmas": False,
    "use_dynamic_shifting": True, "use_exponential_sigmas": False, "use_karras_sigmas": False,
}
# ModelTC/Qwen-Image-Lightning's diffusers example: shift 3 at every resolution, no terminal stretch
LIGHTNING = {"base_shift": math.log(3), "max_shift": math.log(3), "shift_terminal": None,
             "use_dynamic_shifting": True, "time_shift_type": "exponential"}
LIGHTNING_NAME = "FlowMatch Euler shift 3 (Lightning)"

_UNIPC = flow_sigmas("UniPCMultistepScheduler")
SCHEDULERS = {
    "FlowMatch Euler": FLOW_MATCH["FlowMatch Euler"],
    LIGHTNING_NAME: entry("FlowMatchEulerDiscreteScheduler", **LIGHTNING),
    "UniPC": Scheduler(_UNIPC.cls, _UNIPC.overrides, (TXT2IMG, EDIT), FLOW_ONLY_TXT2IMG),
}


def nan_at_one_step(config) -> bool:
    """A single step with a terminal stretch (``shift_terminal``) divides 0 by 0: the image is NaN."""
    return bool(config.get("shift_terminal"))
