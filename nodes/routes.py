"""The LoRA Deck panel's server side: read-only GET routes and the live ``loradeck.snapshot`` event.

Handlers answer from immutable snapshots only (``owner.snapshot``), never touching a pipeline, and
do their work on a worker thread so the server's event loop never waits. Everything a handler needs
(the runtime, the name lookup) is passed in; ``nodes/comfy_server.py`` wires them into ComfyUI.

    GET /loradeck/snapshot              live pipelines + recently published snapshots (capped)
    GET /loradeck/resolve?name=&hash=   where a workflow's LoRA name is on this machine (local name only)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from ..core.errors import LoraFileError
from ..core.files import unusable
from ..core.lora_lookup import Located
from . import panel_payload

SNAPSHOT_PATH = "/loradeck/snapshot"
RESOLVE_PATH = "/loradeck/resolve"
EVENT = "loradeck.snapshot"
MAX_NAME = 1024
MAX_HASHES = 4
NO_STORE = {"Cache-Control": "no-store"}

Locate = Callable[[str, list[str]], Located]  # (name, recorded hashes) -> where it is


def snapshot_body(runtime, max_bytes: int = panel_payload.MAX_RESPONSE_BYTES) -> bytes:
    """The encoded answer of GET /loradeck/snapshot; reads immutable snapshots and nothing else."""
    owners = runtime.pipelines.owners()
    payload = panel_payload.build([o.snapshot for o in owners], runtime.recent.items(), max_bytes)
    store = getattr(runtime, "store", None)
    if store is not None:  # the adapter store's memory: bytes held now, and its byte budget
        payload.update(store_bytes=int(store.nbytes), store_budget=int(store.budget_bytes))
    return panel_payload.encode(payload)


def resolve_answer(locate: Locate, name: str, hashes: list[str]) -> dict:
    """Where ``name`` (or a file with one of ``hashes``) is, as a local LoRA name; never a filesystem path."""
    try:
        found = locate(name, hashes)
    except LoraFileError as exc:
        return {"name": name, "found": None, "how": None, "error": f"{exc.problem}. {exc.advice}"}
    except (OSError, ValueError) as exc:  # a folder that cannot be listed, say: still an answer, not a 500
        return {"name": name, "found": None, "how": None, "error": f"cannot be looked up ({type(exc).__name__})"}
    return {"name": name, "found": found.name, "how": found.how, "error": None}


def _bad_request(text: str) -> web.Response:
    return web.json_response({"error": text}, status=400, headers=NO_STORE)


def snapshot_handler(runtime, max_bytes: int = panel_payload.MAX_RESPONSE_BYTES):
    async def handle(request: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(None, snapshot_body, runtime, max_bytes)
        return web.Response(body=body, content_type="application/json", headers=NO_STORE)

    return handle


def resolve_handler(locate: Locate):
    async def handle(request: web.Request) -> web.Response:
        name = request.query.get("name", "")
        hashes = request.query.getall("hash", [])[:MAX_HASHES]
        if not name or len(name) > MAX_NAME:
            return _bad_request(f"name must be 1 to {MAX_NAME} characters")
        why = unusable(name, MAX_NAME)
        if why:
            return _bad_request(f"{name!r:.80} is not a usable LoRA name ({why})")
        answer = await asyncio.get_running_loop().run_in_executor(None, resolve_answer, locate, name, hashes)
        return web.json_response(answer, headers=NO_STORE)

    return handle


def register(routes, runtime, locate: Locate) -> None:
    """Add the GET routes to an aiohttp ``RouteTableDef`` (ComfyUI's ``PromptServer.instance.routes``)."""
    routes.get(SNAPSHOT_PATH)(snapshot_handler(runtime))
    routes.get(RESOLVE_PATH)(resolve_handler(locate))


def event_listener(send: Callable[[str, dict], None]) -> Callable:
    """A snapshot listener that pushes each snapshot to browsers as ``loradeck.snapshot``."""

    def on_snapshot(snapshot) -> None:
        send(EVENT, panel_payload.event(snapshot))

    return on_snapshot
