"""Attaching the panel's routes and live event to ComfyUI's PromptServer (once per server)."""

from __future__ import annotations

import logging
import weakref

from . import records, routes

log = logging.getLogger(__name__)

_attached: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # server -> its snapshot listener


def _has_route(table, path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in table)


def attach(server, runtime, locate, docs: tuple[str, str, tuple] | None = None, listed=lambda path: True):
    """Register the routes on ``server.routes`` and publish ``runtime``'s snapshots through ``server.send_sync``,
    once per server (a second copy of the pack finds the routes there and does nothing). ``docs`` = (pack
    folder name, docs folder, node IDs) adds the node help pages. Returns the listener."""
    if server in _attached or _has_route(server.routes, routes.SNAPSHOT_PATH):
        return _attached.get(server)
    routes.register(server.routes, runtime, locate, listed)
    if docs is not None:
        routes.register_docs(server.routes, *docs)
    if hasattr(server, "add_on_prompt_handler"):
        server.add_on_prompt_handler(on_prompt(locate))
    listener = runtime.events.subscribe(routes.event_listener(server.send_sync, runtime))
    _attached[server] = listener
    log.info("loradeck: panel routes registered (%s)", ", ".join(routes.PATHS))
    return listener


def on_prompt(locate):
    """ComfyUI's on_prompt hook (before validation): LoRA names of a shared workflow are pointed at this
    machine's files by the hashes recorded with each node, so the queue-time check sees local names."""

    def handle(json_data):
        try:
            extra = json_data.get("extra_data") or {}
            records.localize(json_data.get("prompt"), extra.get("extra_pnginfo"), locate)
        except Exception:  # never stop a prompt from queueing; the node reports what it cannot find
            log.exception("loradeck: looking up the workflow's LoRA names failed")
        return json_data

    return handle


def attach_to_comfyui(runtime, locate, docs: tuple[str, str, tuple] | None = None, listed=lambda path: True) -> None:
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
    attach(instance, runtime, locate, docs, listed)
