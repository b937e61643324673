"""LoRA Deck: a ComfyUI node pack and the Python package ``loradeck``.

ComfyUI imports this file from ``custom_nodes/<folder>``; programmers ``import loradeck.core``.
The node tables are imported on first access (PEP 562): ComfyUI reads them with ``hasattr``/
``getattr``, which triggers the import, while ``import loradeck.core`` or the ``loradeck`` command
never load the nodes (and with them torch and diffusers) just because the package was imported.
"""

import importlib

WEB_DIRECTORY = "./web"

_LAZY = {"NODE_CLASS_MAPPINGS": ".nodes", "NODE_DISPLAY_NAME_MAPPINGS": ".nodes"}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # later reads skip this function
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})
