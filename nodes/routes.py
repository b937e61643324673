"""The LoRA Deck panel's server side: read-only GET routes and the live ``loradeck.snapshot`` event.

Handlers answer from immutable snapshots only (``owner.snapshot``), never touching a pipeline,
and do their work on a worker thread so the server's event loop never waits. ``attach`` wires
them into ComfyUI's PromptServer (nodes/host.py calls it; tests pass a stand-in server).

    GET /loradeck/snapshot              live pipelines + recently published snapshots (capped)
    GET /loradeck/resolve?name=&hash=   where a workflow's LoRA name is on this machine (local name only)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable

from aiohttp import web

from ..core import events
from ..core.errors import LoraFileError
from ..core.pipelines import REGISTRY
from . import host, panel_payload

log = logging.getLogger(__name__)

SNAPSHOT_PATH = "/loradeck/snapshot"
RESOLVE_PATH = "/loradeck/resolve"
EVENT = "loradeck.snapshot"
RECENT_MAX = 20
MAX_NAME = 1024
MAX_HASHES = 4
NO_STORE = {"Cache-Control": "no-store"}


class RecentSnapshots:
    """The last few snapshots published after a reconcile (any owner, including Python-API decks)."""

    def __init__(self, maxlen: int = RECENT_MAX):
        self._items: deque = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def record(self, snapshot) -> None:
        with self._lock:
            self._items.append(snapshot)

    def items(self) -> list:
        """Newest first."""
        with self._lock:
            return list(reversed(self._items))


RECENT = RecentSnapshots()


def snapshot_body(owners: Callable[[], tuple], recent: RecentSnapshots, max_bytes: int) -> bytes:
    """The encoded answer of GET /loradeck/snapshot; reads ``owner.snapshot`` (immutable) and nothing else."""
    payload = panel_payload.build([o.snapshot for o in owners()], recent.items(), max_bytes)
    return panel_payload.encode(payload)


def resolve_answer(name: str, hashes: list[str]) -> dict:
    """Where ``name`` (or a file with one of ``hashes``) is, as a local LoRA name; never a filesystem path."""
    try:
        found = host.locate_lora(name, hashes)
    except LoraFileError as exc:
        return {"name": name, "found": None, "how": None, "error": f"{exc.problem}. {exc.advice}"}
    return {"name": name, "found": found.name, "how": found.how, "error": None}


def snapshot_handler(owners: Callable[[], tuple] = REGISTRY.owners, recent: RecentSnapshots = RECENT,
                     max_bytes: int = panel_payload.MAX_RESPONSE_BYTES):
    async def handle(request: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(None, snapshot_body, owners, recent, max_bytes)
        return web.Response(body=body, content_type="application/json", headers=NO_STORE)

    return handle


async def resolve_handler(request: web.Request) -> web.Response:
    name = request.query.get("name", "")
    hashes = request.query.getall("hash", [])[:MAX_HASHES]
    if not name or len(name) > MAX_NAME:
        return web.json_response({"error": f"name must be 1 to {MAX_NAME} characters"}, status=400, headers=NO_STORE)
    answer = await asyncio.get_running_loop().run_in_executor(None, resolve_answer, name, hashes)
    return web.json_response(answer, headers=NO_STORE)


def register(routes, owners: Callable[[], tuple] = REGISTRY.owners, recent: RecentSnapshots = RECENT) -> None:
    """Add the GET routes to an aiohttp ``RouteTableDef`` (ComfyUI's ``PromptServer.instance.routes``)."""
    routes.get(SNAPSHOT_PATH)(snapshot_handler(owners, recent))
    routes.get(RESOLVE_PATH)(resolve_handler)


def event_listener(send: Callable[[str, dict], None], recent: RecentSnapshots = RECENT) -> Callable:
    """A core events listener: remember the snapshot and push it to browsers as ``loradeck.snapshot``."""

    def on_snapshot(snapshot) -> None:
        recent.record(snapshot)
        send(EVENT, panel_payload.event(snapshot))

    return on_snapshot


_attached: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # server -> its events listener


def _has_route(routes, path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in routes)


def attach(server, owners: Callable[[], tuple] = REGISTRY.owners, recent: RecentSnapshots = RECENT):
    """Register the routes on ``server.routes`` and publish snapshots through ``server.send_sync``, once per
    server (a second copy of the pack finds the routes there and does nothing). Returns the listener or None."""
    if server in _attached or _has_route(server.routes, SNAPSHOT_PATH):
        return _attached.get(server)
    register(server.routes, owners, recent)
    listener = events.subscribe(event_listener(server.send_sync, recent))
    _attached[server] = listener
    log.info("loradeck: panel routes registered (%s, %s)", SNAPSHOT_PATH, RESOLVE_PATH)
    return listener
