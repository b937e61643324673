"""The panel's server side: GET routes answer from snapshots only, capped in size; live events; the host hook."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import types
from dataclasses import dataclass

import pytest

from helpers import make_pipe

web = pytest.importorskip("aiohttp.web")
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from loradeck.core import Deck  # noqa: E402
from loradeck.core.events import EventBus, RecentSnapshots  # noqa: E402
from loradeck.nodes import comfy_server, host, panel_payload, routes  # noqa: E402

XSS = "<img src=x onerror=window.__xss=1>"


class FakePromptServer:
    """What ``routes.attach`` needs from ComfyUI's PromptServer: ``routes`` and ``send_sync``."""

    def __init__(self):
        self.routes = web.RouteTableDef()
        self.sent: list[tuple[str, dict]] = []

    def send_sync(self, event, data, sid=None):
        self.sent.append((event, data))


def panel_runtime(*owners, events: EventBus | None = None):
    """What the routes read from a runtime: its pipelines' owners, recent snapshots and event bus."""
    return types.SimpleNamespace(pipelines=types.SimpleNamespace(owners=lambda: tuple(owners)),
                                 recent=RecentSnapshots(), events=events or EventBus())


def _get(route_table, path: str, **params):
    """GET ``path`` from an app holding ``route_table``; returns (status, parsed JSON, body bytes)."""

    async def go():
        app = web.Application()
        app.add_routes(route_table)
        async with TestClient(TestServer(app)) as client:
            response = await client.get(path, params=params)
            body = await response.read()
            return response.status, json.loads(body), body

    return asyncio.run(go())


@pytest.fixture
def deck(files):
    deck = Deck(make_pipe(), label="panel-test")
    deck.add(files["a"], name="style", model=0.8, clip=0.5).add(files["k"], name="detail", model=0.6)
    return deck.fuse(names=["detail"])


@pytest.fixture
def attached(deck):
    server, bus = FakePromptServer(), deck.owner.runtime.events
    shown = panel_runtime(deck.owner, events=bus)
    bus.subscribe(shown.recent.record)
    listener = comfy_server.attach(server, shown, host.locate_lora)
    yield server, shown.recent
    bus.unsubscribe(listener)


def test_snapshot_route_lists_pipelines_adapters_weights_and_fused_flags(attached, deck):
    server, _ = attached
    status, data, _ = _get(server.routes, routes.SNAPSHOT_PATH)
    assert status == 200 and data["version"] == 2 and not data["truncated"]
    (pipeline,) = data["pipelines"]
    assert pipeline["label"] == "panel-test" and pipeline["family"] == "sd1"
    (branch,) = pipeline["branches"]  # the Python API applies as one source
    assert branch["current"] and branch["source"] == "" and branch["pipeline_id"] == pipeline["pipeline_id"]
    adapters = {a["name"]: a for a in branch["adapters"]}
    assert set(adapters) == {"style", "detail"}
    assert dict(adapters["style"]["weights"]) == {"unet": 0.8, "text_encoder": 0.5}
    assert adapters["detail"]["fused"] and not adapters["style"]["fused"]
    assert (adapters["detail"]["state"], adapters["style"]["state"]) == ("fused", "active")
    assert adapters["style"]["report"]["matched"] == adapters["style"]["report"]["total"] > 0


def test_live_event_is_sent_and_kept_in_recent(attached, deck):
    server, recent = attached
    deck.set_weights("style", model=0.25)
    event, body = server.sent[-1]
    assert event == "loradeck.snapshot" and body["label"] == "panel-test"
    assert dict(next(a for a in body["adapters"] if a["name"] == "style")["weights"])["unet"] == 0.25
    _, data, _ = _get(server.routes, routes.SNAPSHOT_PATH)
    assert data["recent"][0]["applied_at"] == body["applied_at"]


def test_route_answers_while_the_pipeline_is_busy(attached, deck):
    """The executor may hold the owner's lock mid-run: the route reads the immutable snapshot and answers."""
    server, _ = attached
    held, release = threading.Event(), threading.Event()

    def busy():
        with deck.owner.lock:
            held.set()
            release.wait(30)

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        assert held.wait(10)
        status, data, _ = _get(server.routes, routes.SNAPSHOT_PATH)
        assert status == 200 and len(data["pipelines"][0]["branches"][0]["adapters"]) == 2
    finally:
        release.set()
        worker.join()


def test_attach_is_idempotent(deck):
    server, shown = FakePromptServer(), panel_runtime(deck.owner)
    first = comfy_server.attach(server, shown, host.locate_lora)
    assert comfy_server.attach(server, panel_runtime(), host.locate_lora) is first
    paths = [r.path for r in server.routes]
    assert sorted(paths) == sorted(routes.PATHS)


def test_host_hook_registers_on_comfyui_prompt_server(monkeypatch, runtime):
    server = FakePromptServer()
    monkeypatch.setitem(sys.modules, "server", types.SimpleNamespace(PromptServer=types.SimpleNamespace(
        instance=server)))
    comfy_server.attach_to_comfyui(runtime, host.locate_lora)
    assert {r.path for r in server.routes} == set(routes.PATHS)
    Deck(make_pipe(), runtime=runtime).unfuse()  # each apply's snapshot now reaches the browser as a live event
    assert server.sent and server.sent[-1][0] == routes.EVENT


@dataclass(frozen=True)
class _Snap:
    data: dict

    def to_dict(self):
        return {**self.data, "adapters": list(self.data["adapters"])}


def _huge_snapshot(count: int) -> _Snap:
    adapter = {"name": XSS * 100, "file": "/x/" + "f" * 5000, "weights": [["unet", 1.0]], "fused": False,
               "enabled": True, "report": {"metadata": {"trigger_words": ["w" * 3000] * 500, "nested": {"a": {
                   "b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}, "score": float("nan")}}
    return _Snap({"pipeline_id": "p1", "label": "big", "family": "sd1", "dtype": "float32", "device": "cpu",
                  "applied_at": 1.0, "source": "", "adapters": [adapter] * count})


@dataclass(frozen=True)
class _Owner:
    snapshot: _Snap

    @property
    def branches(self):
        return (self.snapshot,)


def test_response_is_capped_and_says_so():
    server = FakePromptServer()
    routes.register(server.routes, panel_runtime(_Owner(_huge_snapshot(5000))), host.locate_lora)
    status, data, body = _get(server.routes, routes.SNAPSHOT_PATH)
    assert status == 200 and len(body) <= panel_payload.MAX_RESPONSE_BYTES
    (branch,) = data["pipelines"][0]["branches"]
    assert data["truncated"] and branch["adapters_truncated"] and branch["adapters_total"] == 5000
    assert 0 < len(branch["adapters"]) < panel_payload.MAX_ADAPTERS
    adapter = branch["adapters"][0]
    assert len(adapter["name"]) <= panel_payload.MAX_TEXT + 1 and adapter["name"].endswith(panel_payload.CUT)
    assert len(adapter["report"]["metadata"]["trigger_words"]) == panel_payload.MAX_ITEMS
    assert adapter["report"]["score"] is None  # NaN is not JSON


def test_event_body_is_capped_too():
    body = panel_payload.event(_huge_snapshot(3000), max_bytes=200_000)
    assert len(panel_payload.encode(body)) <= 200_000 and body["adapters_truncated"]


def test_resolve_route_gives_local_names_never_paths(lora_dir, use_models):
    models = use_models(str(lora_dir))
    server = FakePromptServer()
    routes.register(server.routes, panel_runtime(), lambda name, hashes: host.locate_lora(name, hashes, models))
    _, found, _ = _get(server.routes, routes.RESOLVE_PATH, name="elsewhere\\b.safetensors")
    assert found == {"name": "elsewhere\\b.safetensors", "found": "sub/b.safetensors", "how": "file name",
                     "hash_checked": False, "listed": True, "error": None}
    _, missing, body = _get(server.routes, routes.RESOLVE_PATH, name="bb.safetensors")
    assert missing["found"] is None and "Closest names: 'sub/b.safetensors'" in missing["error"]
    assert str(lora_dir).encode() not in body
    status, _, _ = _get(server.routes, routes.RESOLVE_PATH, name="x" * 2000)
    assert status == 400
