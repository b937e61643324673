"""The schedulers FLUX.2 takes. Its pipelines pass custom sigmas and an empirical shift ``mu`` (a fit over image
size and step count) to ``set_timesteps``: FlowMatch Euler takes both; the multistep solvers run on flow sigmas
(the pipeline then drops its sigmas) with dynamic shifting, so ``mu`` sets their shift. FlowMatch Heun takes no
sigmas, the k-diffusion-style ones no ``mu``. Inpainting noises the image with ``scale_noise``, which only the
FlowMatch schedulers have; an edit runs the text-to-image class, so every text-to-image scheduler fits it."""

from dataclasses import replace

from ...models.family import EDIT, TXT2IMG
from ...models.schedulers import FLOW_MATCH, flow_sigmas

INPAINT_NOISE = ("diffusers' FLUX.2 inpainting pipeline noises the input image with scheduler.scale_noise, which only "
                 "the FlowMatch schedulers have")


def _solver(cls: str):
    return replace(flow_sigmas(cls, use_dynamic_shifting=True), modes=(TXT2IMG, EDIT),
                   note=INPAINT_NOISE)


SCHEDULERS = {
    "FlowMatch Euler": FLOW_MATCH["FlowMatch Euler"],
    "DPM++ 2M": _solver("DPMSolverMultistepScheduler"),
    "UniPC": _solver("UniPCMultistepScheduler"),
    "DEIS": _solver("DEISMultistepScheduler"),
}
