"""The schedulers Z-Image takes. Its pipelines always pass custom sigmas (and a resolution shift ``mu``), and its
img2img / inpainting pipelines noise the image with ``scale_noise``, which only FlowMatch schedulers have:

- FlowMatch Euler (its own scheduler, every mode);
- UniPC on flow sigmas with the model's shift, text-to-image only (given the sigmas as an array: generate.py).

Not offered: FlowMatch Heun and diffusers' DPM++ / DEIS / SA solvers take no custom sigmas (ValueError); Euler
(non-flow) takes no ``mu`` (TypeError); FlowMatch LCM runs, but draws its per-step noise from torch's global
generator (the pipelines pass it no generator), so a seed would not reproduce an image.
"""

from ...models.schedulers import FLOW_MATCH

SCHEDULERS = {
    "FlowMatch Euler": FLOW_MATCH["FlowMatch Euler"],
    "UniPC": FLOW_MATCH["UniPC"],
}
