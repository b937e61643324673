"""A small aiohttp server for browser tests of the panel: web/ as ComfyUI serves it, stand-ins for the frontend's
scripts/app.js and scripts/api.js, and the pack's REAL routes and live event wired by ``comfy_server.attach``.

It plays ComfyUI's PromptServer: ``routes`` (a RouteTableDef, mirrored under /api like ComfyUI does) and a
thread-safe ``send_sync`` that pushes ``{type, data}`` over a websocket at /ws.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import types
from pathlib import Path

from aiohttp import WSMsgType, web

from loradeck.core.events import RecentSnapshots
from loradeck.nodes import comfy_server, host

PACK = Path(__file__).resolve().parents[1]
WEB = PACK / "web"
STANDIN = Path(__file__).resolve().parent / "browser"
EXTENSION_PREFIX = "/extensions/loradeck"


def _file(path: Path):
    async def handler(request):
        return web.FileResponse(path)

    return handler


class _Shown:
    """What the routes read from a runtime: the test's owner list (release drops from it), the recent snapshots,
    the event bus, and the folders and hashes of the runtime names are looked up in (it may change mid-test)."""

    def __init__(self, server: PanelTestServer):
        self._server = server
        self.pipelines = types.SimpleNamespace(owners=lambda: tuple(server.owners), release=server.release)
        self.recent = RecentSnapshots()
        self.events = server.runtime.events

    @property
    def folders(self):
        return (self._server.names_runtime or self._server.runtime).folders

    @property
    def hashes(self):
        return (self._server.names_runtime or self._server.runtime).hashes


class PanelTestServer:
    def __init__(self, owners, runtime):
        self.owners = owners  # a list the test may change; the routes read it on every request
        self.runtime = runtime  # whose snapshots reach the browser as live events
        self.names_runtime = None  # whose folders /loradeck/resolve looks in (None: the nodes' runtime)
        self.routes = web.RouteTableDef()
        self.sockets: set[web.WebSocketResponse] = set()
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._listener = None
        self.url = ""

    # -- PromptServer's surface -----------------------------------------------------------------
    def send_sync(self, event: str, data, sid=None) -> None:
        asyncio.run_coroutine_threadsafe(self._broadcast({"type": event, "data": data}), self.loop)

    async def _broadcast(self, message: dict) -> None:
        for ws in list(self.sockets):
            await ws.send_json(message)

    # -- the app ---------------------------------------------------------------------------------
    async def _websocket(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.add(ws)
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self.sockets.discard(ws)
        return ws

    async def _extensions(self, request):
        return web.json_response(sorted(f"{EXTENSION_PREFIX}/{p.name}" for p in WEB.glob("*.js")))

    def release(self, pipeline_id: str) -> bool:
        kept = [o for o in self.owners if o.id != pipeline_id]
        released = len(kept) < len(self.owners)
        self.owners[:] = kept
        return released

    def _app(self) -> web.Application:
        self._listener = comfy_server.attach(
            self, _Shown(self), lambda name, hashes: host.locate_lora(name, hashes, self.names_runtime))
        app = web.Application()
        app.add_routes(self.routes)
        app.add_routes([web.route(r.method, "/api" + r.path, r.handler) for r in self.routes])
        app.add_routes([
            web.get("/", _file(STANDIN / "index.html")),
            web.get("/harness.js", _file(STANDIN / "harness.js")),
            web.get("/ws", self._websocket),
            web.get("/extensions", self._extensions),
            web.static("/scripts", STANDIN / "scripts"),
            web.static(EXTENSION_PREFIX, WEB),
        ])
        return app

    async def _start(self, sock: socket.socket) -> None:
        self._runner = web.AppRunner(self._app(), shutdown_timeout=2.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def start(self) -> PanelTestServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(sock), self.loop).result(30)
        return self

    async def _close(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        await self._runner.cleanup()

    def stop(self) -> None:
        if self._listener is not None:
            self.runtime.events.unsubscribe(self._listener)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def output_dir() -> Path:
    """Where browser tests keep screenshots: $LORADECK_TEST_OUTPUT, default tests/_output (ignored by git)."""
    folder = Path(os.environ.get("LORADECK_TEST_OUTPUT") or Path(__file__).resolve().parent / "_output")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
