"""The schedulers Krea 2 takes. Krea2Pipeline always passes its own sigmas and a shift ``mu`` (resolution-dependent
on Raw, fixed 1.15 on Turbo), so only schedulers whose ``set_timesteps`` takes both run: FlowMatch Euler and UniPC
on flow sigmas (which applies the same exponential shift with ``mu``). FlowMatch Heun, DPM++ 2M/SDE, DEIS and
SA-Solver take no custom sigmas there, Euler takes no ``mu``: diffusers raises for each. FlowMatch LCM runs but
draws each step's noise from torch's global random state (the pipeline passes no generator to ``step``), so a seed
would not give the same image twice: it is left out.
"""

from ...models.schedulers import FLOW_MATCH

SCHEDULERS = {
    "FlowMatch Euler": FLOW_MATCH["FlowMatch Euler"],
    "UniPC": FLOW_MATCH["UniPC"],
}
