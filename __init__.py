"""LoRA Deck: a ComfyUI node pack and the Python package ``loradeck``.

ComfyUI imports this file from ``custom_nodes/<folder>`` and reads the node tables; programmers
``import loradeck.core``. The tables are built on first access, so importing the package (or the
core, or the command line) never loads the node classes.
"""

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]


def __getattr__(name: str):
    if name in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
        from . import nodes

        return getattr(nodes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
