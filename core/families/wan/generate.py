"""How Generate calls a Wan pipeline: a video of ``num_frames`` frames (4k + 1: the VAE packs 4 frames into one
latent frame after the first), ``num_videos_per_prompt`` for the batch, a negative prompt with classic CFG (Wan 2.2's
low-noise expert takes the same guidance, diffusers' default for ``guidance_scale_2``). Image-to-video passes the
image as the first frame (Generate's edit mode: the loaded I2V class, or ``WanImageToVideoPipeline`` made from a
TI2V-5B model)."""

from __future__ import annotations

from ...errors import SpecError
from ...generation.calls import StepCallback, common, step_end
from ...models.family import EDIT, TXT2IMG
from .ftfy_fallback import ensure_ftfy

FRAMES = 81  # diffusers' and ComfyUI's default length (5 s at Wan's 16 fps)
I2V = "WanImageToVideoPipeline"


def frames(p) -> int:
    """The frames asked for, checked: 4k + 1 (1, 5, 9, ... 81), as the Wan VAE needs them."""
    count = FRAMES if p.num_frames is None else int(p.num_frames)
    if (count - 1) % 4:
        low, high = count - (count - 1) % 4, count - (count - 1) % 4 + 4
        raise SpecError(f"num_frames {count}: Wan makes 4k + 1 frames (1, 5, 9, ... 81); choose {low} or {high}")
    return count


def call(p, on_step: StepCallback) -> dict:
    ensure_ftfy()  # diffusers' I2V pipeline calls ftfy unguarded (ftfy_fallback.py)
    kwargs = common(p)
    kwargs["num_videos_per_prompt"] = kwargs.pop("num_images_per_prompt")
    return {**kwargs, "negative_prompt": p.negative_prompt or None, "num_frames": frames(p),
            **step_end(on_step, int(p.steps))}


def cannot_run(pipe, mode: str) -> str:
    """Why this Wan model cannot run ``mode``: an image-to-video model needs its start image; a text-to-video model
    takes none (only TI2V-5B, whose latents carry the image, does both)."""
    loaded = type(pipe).__name__
    if loaded == I2V and mode == TXT2IMG:
        return ("this Wan model is image-to-video: it starts from an image (connect one to Generate's image input, "
                "e.g. Load Image), or load a text-to-video model")
    if loaded != I2V and mode == EDIT and not getattr(pipe.config, "expand_timesteps", False):
        channels = getattr(getattr(pipe, "transformer", None), "config", None)
        channels = getattr(channels, "in_channels", "?")
        return (f"this Wan model is text-to-video (its transformer takes {channels} latent channels): it cannot start "
                "from an image. Disconnect the image, or load an image-to-video model (Wan 2.1 / 2.2 I2V, or "
                "Wan 2.2 TI2V-5B)")
    return ""
