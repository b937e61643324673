"""The schedulers Flux takes. Its pipelines always pass custom sigmas and a resolution-dependent shift (mu):
FlowMatch Heun takes neither, and diffusers' DPM solver takes mu only with dynamic shifting on (as Flux dev's
own config has)."""

from ...models.schedulers import FLOW_MATCH, flow_sigmas

SCHEDULERS = {
    "FlowMatch Euler": FLOW_MATCH["FlowMatch Euler"],
    "DPM++ 2M": flow_sigmas("DPMSolverMultistepScheduler", use_dynamic_shifting=True),
    "UniPC": FLOW_MATCH["UniPC"],
}
