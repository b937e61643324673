"""The schedulers Sana takes. Its pipeline's own is DPM-Solver++ on flow sigmas with the model's ``flow_shift``;
FlowMatch Euler and UniPC get that shift too (the shared FLOW_MATCH entries read ``shift``, which Sana's
config does not have)."""

from ...models.family import TXT2IMG
from ...models.schedulers import FromConfig, Scheduler, entry

SHIFT = FromConfig("flow_shift", 1.0)
FLOW = {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": SHIFT}

SCHEDULERS = {
    "FlowMatch Euler": entry("FlowMatchEulerDiscreteScheduler", shift=SHIFT),
    "DPM++ 2M": Scheduler("DPMSolverMultistepScheduler", tuple(FLOW.items()), (TXT2IMG,)),
    "UniPC": Scheduler("UniPCMultistepScheduler", tuple(FLOW.items()), (TXT2IMG,)),
}
