"""diffusers' Wan image-to-video, video-to-video, VACE and Animate pipelines call ``ftfy.fix_text`` on every prompt
without checking that ftfy is installed (only the text-to-video pipeline checks ``is_ftfy_available()``): without
the package they fail with ``NameError: name 'ftfy' is not defined``. ``pip install ftfy`` (LoRA Deck's ``video``
extra) is the fix; where it is missing, ``ensure_ftfy`` gives those modules what their text-to-video sibling does
without it: the prompt as it is (ftfy only repairs mis-decoded text, e.g. "cafÃ©" -> "café")."""

from __future__ import annotations

import importlib
import types

# the diffusers modules that call ftfy.fix_text unguarded (diffusers 0.35 to 0.42)
UNGUARDED = ("pipeline_wan_i2v", "pipeline_wan_video2video", "pipeline_wan_vace", "pipeline_wan_animate")
STAND_IN = types.SimpleNamespace(fix_text=lambda text: text, __doc__="LoRA Deck's stand-in: ftfy is not installed")


def ensure_ftfy() -> bool:
    """Give the Wan pipeline modules a ``ftfy`` when they have none; True when the stand-in was set somewhere."""
    stood_in = False
    for name in UNGUARDED:
        try:
            module = importlib.import_module(f"diffusers.pipelines.wan.{name}")
        except ImportError:  # an older diffusers without that pipeline
            continue
        if getattr(module, "ftfy", None) is None:
            module.ftfy = STAND_IN
            stood_in = True
    return stood_in
