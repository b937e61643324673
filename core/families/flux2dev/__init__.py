"""FLUX.2 [dev]: the FLUX.2 transformer (with a guidance embedder) and a Mistral Small 3 text encoder.

A row of its own beside FLUX.2 [klein] (``flux2/``, whose names, block scheme, schedulers and call it shares)
because diffusers runs it with another pipeline class (``Flux2Pipeline``) and text encoder, its guidance is embedded
(no classifier-free guidance) and diffusers has no inpainting class for it: Generate's inpainting is refused by
name, an image without a mask is the reference of an edit.
"""

from ...models.family import Family
from ..flux2 import KOHYA_PREFIXES, MARKERS
from ..flux2.blocks import BLOCKS
from ..flux2.generate import call
from ..flux2.names import flux2_names
from ..flux2.schedulers import SCHEDULERS
from . import single_file, tiny

FAMILY = Family(
    key="flux2dev", title="FLUX.2 [dev]", pipeline_classes=("Flux2Pipeline",), denoiser="transformer",
    text_encoders=("text_encoder",), kohya_prefixes=KOHYA_PREFIXES,
    tiny=tiny.build, builtin="tiny-flux2dev", blocks=BLOCKS, schedulers=SCHEDULERS, call=call,
    single_files=single_file.ARCHS, original_names=flux2_names, lora_markers=MARKERS,
    edit="Flux2Pipeline", edit_references=True, patch=2, denoise_steps="rest",
)
