"""Attaching the panel's routes and live event to ComfyUI's PromptServer (once per server)."""

from __future__ import annotations

import logging
import weakref

from . import routes

log = logging.getLogger(__name__)

_attached: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # server -> its snapshot listener


def _has_route(table, path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in table)


def attach(server, runtime, locate):
    """Register the routes on ``server.routes`` and publish ``runtime``'s snapshots through ``server.send_sync``,
    once per server (a second copy of the pack finds the routes there and does nothing). Returns the listener."""
    if server in _attached or _has_route(server.routes, routes.SNAPSHOT_PATH):
        return _attached.get(server)
    routes.register(server.routes, runtime, locate)
    listener = runtime.events.subscribe(routes.event_listener(server.send_sync))
    _attached[server] = listener
    log.info("loradeck: panel routes registered (%s, %s)", routes.SNAPSHOT_PATH, routes.RESOLVE_PATH)
    return listener


def attach_to_comfyui(runtime, locate) -> None:
    """Inside ComfyUI: find the running PromptServer and attach to it (a warning if there is none)."""
    try:
        from server import PromptServer  # type: ignore[import-not-found]
    except ImportError:
        log.warning("loradeck: ComfyUI's server module is missing; the LoRA Deck panel stays empty")
        return
    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        log.warning("loradeck: no PromptServer yet; the LoRA Deck panel stays empty")
        return
    attach(instance, runtime, locate)
