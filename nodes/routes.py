"""The LoRA Deck panel's server side: read-only GET routes, one POST that only drops a cache entry, and the
live ``loradeck.snapshot`` event.

Handlers answer from immutable snapshots only (``owner.snapshot``, ``owner.branches``), never touching a
pipeline, and do their file work on a worker thread so the server's event loop never waits. Everything a
handler needs (the runtime, the name lookup) is passed in; ``nodes/comfy_server.py`` wires them into ComfyUI.

    GET  /loradeck/snapshot              live pipelines (each branch's last stack) + recent snapshots (capped)
    GET  /loradeck/resolve?name=&hash=   where a workflow's LoRA name is on this machine (local name only)
    GET  /loradeck/lora?name=&hash=      one LoRA's hash, title, trigger words, and whether it has a preview
    GET  /loradeck/preview?name=         its preview picture (PNG/JPEG/WebP beside it or in its header); 204 if none
    POST /loradeck/release               {"pipeline_id": "p3"}: drop that pipeline from the cache (JSON only);
                                         answers {"released": false} when no pipeline has that id
"""

from __future__ import annotations

import asyncio
import os
import re
import urllib.parse
from collections.abc import Callable

from aiohttp import web

from ..core.errors import LoraFileError
from ..core.files.hashing import autov2
from ..core.files.lookup import Located, inside, listing
from ..core.files.metadata import read_lora_metadata
from ..core.files.previews import find_preview
from ..core.files.reading import unusable
from . import panel_payload

SNAPSHOT_PATH = "/loradeck/snapshot"
RESOLVE_PATH = "/loradeck/resolve"
LORA_PATH = "/loradeck/lora"
PREVIEW_PATH = "/loradeck/preview"
RELEASE_PATH = "/loradeck/release"
PATHS = (SNAPSHOT_PATH, RESOLVE_PATH, LORA_PATH, PREVIEW_PATH, RELEASE_PATH)
EVENT = "loradeck.snapshot"
MAX_NAME = 1024
MAX_HASHES = 4
MAX_BODY = 1024
PIPELINE_ID = re.compile(r"^p\d{1,9}$")
NO_STORE = {"Cache-Control": "no-store"}
IMAGE_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                 "Content-Security-Policy": "default-src 'none'"}

Locate = Callable[[str, list[str]], Located]  # (name, recorded hashes) -> where it is


def lora_name(runtime) -> Callable[[str], str | None]:
    """file path -> its name in the LoRA list ('sub/x.safetensors'), or None when no LoRA root lists it. A
    file under a root is named by its place there; one reached through a symlink that leads out of the roots
    by the name the list gives it (the roots are listed once, the first time such a file is asked for)."""
    folders = getattr(runtime, "folders", None)
    if folders is None:
        return panel_payload.no_name
    given = folders.roots("loras")
    roots = [os.path.realpath(r) for r in given]
    linked: dict[str, str] | None = None  # real path -> listed name, made when first needed

    def name_of(path: str) -> str | None:
        nonlocal linked
        real = os.path.realpath(path) if path else ""
        root = next((r for r in roots if real.startswith(r + os.sep)), None)
        if root or not real:
            return os.path.relpath(real, root).replace(os.sep, "/") if root else None
        if linked is None:
            linked = {}
            for name in listing(given):
                found = next((p for p in (inside(r, name) for r in given) if p), None)
                if found:
                    linked.setdefault(os.path.realpath(found), name)
        return linked.get(real)

    return name_of


def snapshot_body(runtime, max_bytes: int = panel_payload.MAX_RESPONSE_BYTES) -> bytes:
    """The encoded answer of GET /loradeck/snapshot; reads immutable snapshots and nothing else."""
    owners = runtime.pipelines.owners()
    live = [(o.snapshot, getattr(o, "branches", ())) for o in owners]
    payload = panel_payload.build(live, runtime.recent.items(), max_bytes, lora_name(runtime))
    store = getattr(runtime, "store", None)
    if store is not None:  # the adapter store's memory: bytes held now, and its byte budget
        payload.update(store_bytes=int(store.nbytes), store_budget=int(store.budget_bytes))
    return panel_payload.encode(payload)


def _error_text(exc: LoraFileError) -> str:
    return f"{exc.problem}. {exc.advice}"


def resolve_answer(locate: Locate, name: str, hashes: list[str], listed=lambda path: True) -> dict:
    """Where ``name`` (or a file with one of ``hashes``) is, as a local LoRA name; never a filesystem path.
    ``hash_checked`` says whether the content was compared with a recorded hash; ``listed`` whether the
    frontend's own LoRA list has the file (the shipped demo LoRAs are LoRA Deck's only)."""
    try:
        found = locate(name, hashes)
    except LoraFileError as exc:
        return {"name": name, "found": None, "how": None, "hash_checked": False, "listed": False,
                "error": _error_text(exc)}
    except (OSError, ValueError) as exc:  # a folder that cannot be listed, say: still an answer, not a 500
        return {"name": name, "found": None, "how": None, "hash_checked": False, "listed": False,
                "error": f"cannot be looked up ({type(exc).__name__})"}
    checked = bool(hashes) and found.how in ("hash", "file name")
    return {"name": name, "found": found.name, "how": found.how, "hash_checked": checked,
            "listed": bool(listed(found.path)), "error": None}


def lora_answer(runtime, locate: Locate, name: str, hashes: list[str], listed=lambda path: True) -> tuple[int, dict]:
    """(status, body) for GET /loradeck/lora: the file's identity and what its header says."""
    try:
        found = locate(name, hashes)
        meta = read_lora_metadata(found.path)
    except LoraFileError as exc:  # 200: a missing file is an answer, not a fault (browsers log 404s as errors)
        return 200, {"name": name, "found": None, "error": _error_text(exc)}
    sha256 = runtime.hashes.sha256(found.path)
    preview = find_preview(found.path) is not None
    return 200, {"name": name, "found": found.name, "how": found.how, "sha256": sha256,
                 "autov2": autov2(sha256) if sha256 else None, "title": meta.title,
                 "trigger_words": list(meta.trigger_words), "base_model": meta.base_model, "preview": preview,
                 "listed": listed(found.path)}


def preview_answer(runtime, locate: Locate, name: str) -> web.Response:
    """The preview of a LoRA listed under the LoRA roots, by name only (never a path from the request)."""
    try:
        found = locate(name, [])
    except LoraFileError:
        return web.json_response({"error": "no such LoRA"}, status=404, headers=NO_STORE)
    preview = find_preview(found.path)
    if preview is None:
        return web.Response(status=204, headers=NO_STORE)
    return web.Response(body=preview.data, content_type=preview.media_type, headers=IMAGE_HEADERS)


def _name_or_error(request: web.Request) -> tuple[str, web.Response | None]:
    name = request.query.get("name", "")
    if not name or len(name) > MAX_NAME:
        return name, web.json_response({"error": f"name must be 1 to {MAX_NAME} characters"}, status=400,
                                       headers=NO_STORE)
    why = unusable(name, MAX_NAME)
    if why:
        return name, web.json_response({"error": f"{name!r:.80} is not a usable LoRA name ({why})"}, status=400,
                                       headers=NO_STORE)
    return name, None


def _run(function, *args):
    return asyncio.get_running_loop().run_in_executor(None, function, *args)


def _bad_request(text: str) -> web.Response:
    return web.json_response({"error": text}, status=400, headers=NO_STORE)


def snapshot_handler(runtime, max_bytes: int = panel_payload.MAX_RESPONSE_BYTES):
    async def handle(request: web.Request) -> web.Response:
        body = await _run(snapshot_body, runtime, max_bytes)
        return web.Response(body=body, content_type="application/json", headers=NO_STORE)

    return handle


def resolve_handler(locate: Locate, listed):
    async def handle(request: web.Request) -> web.Response:
        name, error = _name_or_error(request)
        if error is not None:
            return error
        hashes = request.query.getall("hash", [])[:MAX_HASHES]
        return web.json_response(await _run(resolve_answer, locate, name, hashes, listed), headers=NO_STORE)

    return handle


def lora_handler(runtime, locate: Locate, listed):
    async def handle(request: web.Request) -> web.Response:
        name, error = _name_or_error(request)
        if error is not None:
            return error
        hashes = request.query.getall("hash", [])[:MAX_HASHES]
        status, body = await _run(lora_answer, runtime, locate, name, hashes, listed)
        return web.json_response(body, status=status, headers=NO_STORE)

    return handle


def preview_handler(runtime, locate: Locate):
    async def handle(request: web.Request) -> web.Response:
        name, error = _name_or_error(request)
        return error if error is not None else await _run(preview_answer, runtime, locate, name)

    return handle


def same_origin(request: web.Request) -> bool:
    """False when a browser says the request comes from another site (its Origin is not this Host). ComfyUI
    checks this for loopback hosts only; this route checks it for every host."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser, or a same-origin GET-like request
    parsed = urllib.parse.urlsplit(origin)
    return bool(parsed.netloc) and parsed.netloc.lower() == request.host.lower()


def release_handler(runtime):
    """Only JSON is accepted, so a cross-site page cannot send this without a CORS preflight, which the
    server never grants; the answer says whether the pipeline was there."""

    async def handle(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return web.json_response({"error": "send JSON"}, status=415, headers=NO_STORE)
        if not same_origin(request):
            return web.json_response({"error": "cross-origin request refused"}, status=403, headers=NO_STORE)
        if request.content_length is None or request.content_length > MAX_BODY:
            return web.json_response({"error": f"body must be at most {MAX_BODY} bytes"}, status=413,
                                     headers=NO_STORE)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400, headers=NO_STORE)
        pipeline_id = body.get("pipeline_id") if isinstance(body, dict) else None
        if not isinstance(pipeline_id, str) or not PIPELINE_ID.match(pipeline_id):
            return web.json_response({"error": "pipeline_id must look like p3"}, status=400, headers=NO_STORE)
        released = await _run(runtime.pipelines.release, pipeline_id)
        return web.json_response({"pipeline_id": pipeline_id, "released": bool(released)}, headers=NO_STORE)

    return handle


def register(routes, runtime, locate: Locate, listed=lambda path: True) -> None:
    """Add the routes to an aiohttp ``RouteTableDef`` (ComfyUI's ``PromptServer.instance.routes``). ``listed(path)``
    says whether the frontend's own LoRA list has a file (the browser records hashes only for those)."""
    routes.get(SNAPSHOT_PATH)(snapshot_handler(runtime))
    routes.get(RESOLVE_PATH)(resolve_handler(locate, listed))
    routes.get(LORA_PATH)(lora_handler(runtime, locate, listed))
    routes.get(PREVIEW_PATH)(preview_handler(runtime, locate))
    routes.post(RELEASE_PATH)(release_handler(runtime))


def docs_path(folder: str) -> str:
    """Where the frontend asks for a node's help page: /extensions/<pack folder>/docs/<node ID>.md."""
    return f"/extensions/{folder}/docs/{{node}}.md"


def register_docs(routes, folder: str, docs_dir: str, node_ids) -> None:
    """Serve web/docs/<Name>.md for node ID <Name>|LoRADeck. Node IDs contain '|', which Windows forbids in file
    names, so the files are named without the suffix and this route (registered before ComfyUI's static route
    for the pack's web folder, so it is found first) maps one to the other."""
    known = {i: os.path.join(docs_dir, i.split("|", 1)[0] + ".md") for i in node_ids}

    async def handle(request: web.Request) -> web.StreamResponse:
        path = known.get(request.match_info.get("node", ""))
        if path is None or not os.path.isfile(path):
            return web.Response(status=404)
        return web.FileResponse(path, headers={"Content-Type": "text/markdown; charset=utf-8", **NO_STORE})

    routes.get(docs_path(folder))(handle)


def event_listener(send: Callable[[str, dict], None], runtime=None) -> Callable:
    """A snapshot listener that pushes each snapshot to browsers as ``loradeck.snapshot``."""
    def on_snapshot(snapshot) -> None:
        send(EVENT, panel_payload.event(snapshot, lora_name=lora_name(runtime)))

    return on_snapshot
