"""FLUX.2 [dev] split files: BFL's ``flux2-dev.safetensors`` (or ComfyUI's fp8 / ComfyUI-GGUF files of it) in
``models/diffusion_models``, the Mistral Small 3 text encoder in ``models/text_encoders`` (ComfyUI's
``mistral_3_small_flux2_*.safetensors``, full or pruned to 30 layers, its tekken tokenizer inside), the FLUX.2 VAE in
``models/vae``.

The transformer, its config read off the weights and the VAE are FLUX.2 [klein]'s (``flux2/single_file.py``); what
differs is the guidance embedder (``guidance_in``: dev only, which keeps the two apart) and the text encoder
(``text_encoder.py``). The text width is checked by the encoder's shapes when it is picked (its config nests it in
``text_config``), not stated by ``derive``.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import Arch, Encoder
from ..flux2.single_file import GUIDANCE, MODULATION, QKV, derive, files
from .text_encoder import mistral_model

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def derive_dev(shapes: dict) -> dict:
    """FLUX.2's derive without the text-width requirement (Mistral 3's config nests it; the picked file's shapes
    are checked against it instead)."""
    out = derive(shapes)
    out.pop("text_encoder", None)
    return out


_MISTRAL = (Encoder("text_encoder", "mistral3", ()),)
_DEV = {**files(CONFIGS), "derive": derive_dev}
_DEV["builders"] = {**_DEV["builders"], "text_encoder": mistral_model}

ARCHS = (
    Arch("dev", "FLUX.2 [dev]", ((QKV, (18432, 6144)), ("img_in.weight", (6144, 128)), (MODULATION, None),
                                  (GUIDANCE, None)), _MISTRAL, **_DEV),
    Arch("tiny-flux2dev", "tiny FLUX.2 [dev] (built-in)", ((QKV, (144, 48)), ("img_in.weight", (48, 16)),
                                                          (MODULATION, None), (GUIDANCE, None)), _MISTRAL, tiny=True,
         **_DEV),
)
