"""LoRA Deck's settings: one immutable dataclass, read from the environment once.

    LORADECK_MODELS_DIR      headless models folder in ComfyUI's layout (loras/, diffusers/, checkpoints/)
    LORADECK_STORE_MB        memory for LoRA files and their converted tensors (LORADECK_FILE_CACHE_MB
                             is the older name); default: a quarter of the memory available at start,
                             between 256 MB and 4 GB
    LORADECK_MAX_ADAPTERS    adapters kept injected per pipeline before the least recently used goes
    LORADECK_MAX_PIPELINES   pipelines kept loaded before the least recently used is released
    LORADECK_ALLOW_PICKLE    1 = the Python API reads .pt/.ckpt/.bin/.pth with torch.load(weights_only=True)
    LORADECK_ALLOW_PARTIAL   1 = load the parts of a LoRA file that fit when others do not (refused otherwise)
    LORADECK_TOKENIZERS      folders (os.pathsep-separated) single-file checkpoints take tokenizers from first
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import SpecError

MB = 1024 * 1024
STORE_SHARE = 4  # a quarter of the available memory
STORE_FLOOR, STORE_CEILING = 256 * MB, 4096 * MB
TRUE = ("1", "true", "yes", "on")
TOKENIZERS_ENV = "LORADECK_TOKENIZERS"


def available_memory() -> int:
    """Bytes of memory available now (physical pages free), or 0 when the OS does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def default_store_bytes() -> int:
    return min(max(available_memory() // STORE_SHARE, STORE_FLOOR), STORE_CEILING)


def _integer(env: Mapping[str, str], name: str, default: int, low: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SpecError(f"environment variable {name}={raw!r} is not a whole number; unset it or set e.g. "
                        f"{name}={default}") from None
    if value < low:
        raise SpecError(f"environment variable {name}={value} must be at least {low}")
    return value


@dataclass(frozen=True)
class Settings:
    models_dir: str = "models"
    store_bytes: int = 2048 * MB
    max_adapters: int = 8
    max_pipelines: int = 2
    allow_pickle: bool = False
    allow_partial: bool = False
    tokenizer_dirs: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment asks for (``os.environ`` when ``env`` is None)."""
        env = os.environ if env is None else env
        store_mb = _integer(env, "LORADECK_STORE_MB", _integer(env, "LORADECK_FILE_CACHE_MB", 0, 0), 1)
        return cls(
            models_dir=env.get("LORADECK_MODELS_DIR", "").strip() or "models",
            store_bytes=store_mb * MB if store_mb else default_store_bytes(),
            max_adapters=_integer(env, "LORADECK_MAX_ADAPTERS", 8, 1),
            max_pipelines=_integer(env, "LORADECK_MAX_PIPELINES", 2, 1),
            allow_pickle=env.get("LORADECK_ALLOW_PICKLE", "").strip().lower() in TRUE,
            allow_partial=env.get("LORADECK_ALLOW_PARTIAL", "").strip().lower() in TRUE,
            tokenizer_dirs=tuple(p for p in env.get(TOKENIZERS_ENV, "").split(os.pathsep) if p.strip()),
        )
