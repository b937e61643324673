"""The schedulers Wan takes. Its diffusers repos ship UniPC with flow sigmas and ``flow_shift`` (3.0 for 480p, 5.0
for 720p); the others are built from that config. The FlowMatch schedulers call the shift ``shift``, so it is carried
over by hand (``from_config`` alone would run them with shift 1). Every one runs text-to-video and image-to-video
(one denoising loop). Euler / Euler a refuse flow prediction, and DDIM, LCM and the inverse DPM solver lack what the
Wan loop calls (``set_begin_index``, ``sigmas``), so they are not offered."""

from ...models.schedulers import FromConfig, entry

SHIFT = FromConfig("flow_shift", 3.0)
FLOW = {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": SHIFT}

SCHEDULERS = {
    "UniPC": entry("UniPCMultistepScheduler", **FLOW),
    "FlowMatch Euler": entry("FlowMatchEulerDiscreteScheduler", shift=SHIFT),
    "FlowMatch Heun": entry("FlowMatchHeunDiscreteScheduler", shift=SHIFT),
    "DPM++ 2M": entry("DPMSolverMultistepScheduler", **FLOW),
    "DEIS": entry("DEISMultistepScheduler", **FLOW),
}
