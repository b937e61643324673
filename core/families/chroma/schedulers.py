"""The schedulers Chroma takes. Its three pipelines always pass their own sigmas (and Flux's resolution shift,
mu, which Chroma1-HD's config ignores: no dynamic shifting), so every scheduler that refuses custom sigmas is
out: FlowMatch Heun, DPM++ 2M and DEIS ("does not support custom sigmas"; Flux's DPM++ 2M entry does not carry
over, the Flux pipeline drops its sigmas for it, Chroma's do not). UniPC on flow sigmas runs text-to-image only
(img2img / inpainting need scale_noise). FlowMatch LCM runs, but Chroma's pipelines do not hand it the run's
generator, so it draws its per-step noise from torch's global generator: the same seed would not give the same
image, and it is not offered."""

from ...models.schedulers import FLOW_MATCH

SCHEDULERS = {
    "FlowMatch Euler": FLOW_MATCH["FlowMatch Euler"],
    "UniPC": FLOW_MATCH["UniPC"],
}
