"""LoRA Deck: a ComfyUI node pack and the Python package ``loradeck``.

ComfyUI imports this file from ``custom_nodes/<folder>``; programmers ``import loradeck.core``.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
