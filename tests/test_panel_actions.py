"""The panel's other routes: a LoRA's identity and preview (only beside known LoRAs, hostile names -> 4xx, never
500), releasing a pipeline (JSON POST only, same origin only), node help pages, and the on_prompt name lookup."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from helpers import make_pipe

web = pytest.importorskip("aiohttp.web")
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from loradeck.core import Deck  # noqa: E402
from loradeck.nodes import NODE_CLASS_MAPPINGS, comfy_server, host, routes  # noqa: E402

HOSTILE = ["../../../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "a\x00b.safetensors", "x" * 1025,
           "", "%2e%2e/%2e%2e/etc/passwd", "sub/../../outside.safetensors", "sub", "k.safetensors/..",
           "C:\\Windows\\win.ini", "\u202e.safetensors", "k.preview.png"]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 200, 10)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def models(tmp_path, files, use_models):
    """models/loras with k (a preview beside it), t (a header thumbnail), plain a, and a symlink out of the root
    (models kept elsewhere), with a picture beside the link."""
    loras = tmp_path / "models" / "loras"
    (loras / "sub").mkdir(parents=True)
    for name, source in (("k.safetensors", "k"), ("a.safetensors", "a"), ("sub/t.safetensors", "b")):
        (loras / name).write_bytes(Path(files[source]).read_bytes())
    (loras / "k.preview.png").write_bytes(_png())
    import base64

    uri = "data:image/png;base64," + base64.b64encode(_png()).decode()
    save_file(load_file(str(loras / "sub/t.safetensors")), str(loras / "sub/t.safetensors"),
              metadata={"modelspec.thumbnail": uri, "modelspec.title": "T", "modelspec.trigger_phrase": "tee, hee"})
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(Path(files["a"]).read_bytes())
    (loras / "escape.safetensors").symlink_to(outside)
    (loras / "escape.preview.png").write_bytes(_png())
    runtime = use_models(str(tmp_path / "models"))
    return runtime, loras


def _app(runtime) -> web.Application:
    table = web.RouteTableDef()
    routes.register(table, runtime, lambda name, hashes: host.locate_lora(name, hashes, runtime))
    routes.register_docs(table, "loradeck", os.path.join(host.PACK_DIR, "web", "docs"), tuple(NODE_CLASS_MAPPINGS))
    app = web.Application()
    app.add_routes(table)
    return app


def _call(runtime, method: str, path: str, **kwargs):
    """(status, headers, body bytes) of one request."""

    async def go():
        async with TestClient(TestServer(_app(runtime))) as client:
            response = await client.request(method, path, **kwargs)
            return response.status, dict(response.headers), await response.read()

    return asyncio.run(go())


def test_preview_beside_the_file_and_in_the_header(models):
    runtime, _ = models
    status, headers, body = _call(runtime, "GET", routes.PREVIEW_PATH, params={"name": "k.safetensors"})
    assert status == 200 and body == _png() and headers["Content-Type"] == "image/png"
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = _call(runtime, "GET", routes.PREVIEW_PATH, params={"name": "sub\\t.safetensors"})
    assert status == 200 and body == _png()
    status, _, body = _call(runtime, "GET", routes.PREVIEW_PATH, params={"name": "a.safetensors"})
    assert (status, body) == (204, b"")  # a known LoRA without a picture


@pytest.mark.parametrize("name", HOSTILE)
def test_preview_route_refuses_hostile_names_with_4xx(models, name):
    runtime, _ = models
    status, headers, body = _call(runtime, "GET", routes.PREVIEW_PATH, params={"name": name})
    assert 400 <= status < 500, (name, status)
    assert not headers.get("Content-Type", "").startswith("image/") and b"root:" not in body


def test_lora_route_gives_hash_title_trigger_words_and_preview(models, files):
    runtime, loras = models
    status, _, body = _call(runtime, "GET", routes.LORA_PATH, params={"name": "sub/t.safetensors"})
    info = json.loads(body)
    sha = hashlib.sha256((loras / "sub/t.safetensors").read_bytes()).hexdigest()
    assert status == 200 and (info["found"], info["sha256"], info["autov2"]) == ("sub/t.safetensors", sha, sha[:10])
    assert (info["title"], info["trigger_words"], info["preview"], info["listed"]) == ("T", ["tee", "hee"], True, True)
    _, _, body = _call(runtime, "GET", routes.LORA_PATH, params={"name": "escape.safetensors"})
    linked = json.loads(body)  # a symlink out of the roots, followed as ComfyUI follows it
    assert (linked["found"], linked["preview"], linked["listed"]) == ("escape.safetensors", True, True)
    status, headers, picture = _call(runtime, "GET", routes.PREVIEW_PATH, params={"name": "escape.safetensors"})
    assert (status, picture) == (200, _png())
    name_of = routes.lora_name(runtime)  # the panel names an adapter's (real) file as the LoRA list does
    assert name_of(os.path.realpath(loras / "escape.safetensors")) == "escape.safetensors"
    assert name_of(str(loras / "sub/t.safetensors")) == "sub/t.safetensors" and name_of("/etc/passwd") is None
    _, _, body = _call(runtime, "GET", routes.LORA_PATH, params={"name": "nowhere.safetensors"})
    missing = json.loads(body)
    assert missing["found"] is None and "not found" in missing["error"] and str(loras) not in body.decode()


def _post(runtime, body, headers=None):
    headers = {"Content-Type": "application/json", **(headers or {})}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    status, _, answer = _call(runtime, "POST", routes.RELEASE_PATH, data=data, headers=headers)
    return status, json.loads(answer) if answer else None


def test_release_drops_the_pipeline_by_its_id(models):
    runtime, _ = models
    owner = runtime.pipelines.get("tiny-sd (built-in)")
    status, answer = _post(runtime, {"pipeline_id": owner.id})
    assert (status, answer) == (200, {"pipeline_id": owner.id, "released": True})
    assert runtime.pipelines.owners() == ()
    assert _post(runtime, {"pipeline_id": owner.id}) == (200, {"pipeline_id": owner.id, "released": False})


@pytest.mark.parametrize("body,headers,status", [
    ({"pipeline_id": "p1"}, {"Content-Type": "text/plain"}, 415),  # a form or a no-cors fetch cannot send JSON
    ({"pipeline_id": "p1"}, {"Origin": "http://evil.example"}, 403),
    ("{not json", {}, 400),
    ({"pipeline_id": "../p1"}, {}, 400),
    ({"pipeline_id": 1}, {}, 400),
    (["p1"], {}, 400),
    ({"pipeline_id": "p1", "pad": "x" * 2000}, {}, 413),
])
def test_release_refuses_anything_but_a_same_origin_json_id(models, body, headers, status):
    runtime, _ = models
    owner = runtime.pipelines.get("tiny-sd (built-in)")
    assert _post(runtime, body, headers)[0] == status
    assert runtime.pipelines.owners() == (owner,)  # nothing was dropped


def test_release_accepts_the_same_origin(models):
    runtime, _ = models
    owner = runtime.pipelines.get("tiny-sd (built-in)")

    async def go():
        async with TestClient(TestServer(_app(runtime))) as client:
            origin = f"http://{client.host}:{client.port}"
            response = await client.post(routes.RELEASE_PATH, json={"pipeline_id": owner.id},
                                         headers={"Origin": origin})
            return response.status, await response.json()

    assert asyncio.run(go()) == (200, {"pipeline_id": owner.id, "released": True})


def test_node_help_pages_are_served_for_every_node(models):
    runtime, _ = models
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        status, headers, body = _call(runtime, "GET", f"/extensions/loradeck/docs/{node_id}.md")
        assert status == 200 and headers["Content-Type"].startswith("text/markdown"), node_id
        assert body.decode().startswith(f"# {cls.DISPLAY_NAME}"), node_id
    assert _call(runtime, "GET", "/extensions/loradeck/docs/..%2F..%2Fpyproject.md")[0] == 404
    assert _call(runtime, "GET", "/extensions/loradeck/docs/Other|Pack.md")[0] == 404


def test_on_prompt_points_shared_names_at_local_files_before_validation(models, files):
    """ComfyUI's on_prompt hook: a LoRA known elsewhere under another name is found by its recorded hash."""
    runtime, _ = models
    sha = hashlib.sha256(Path(files["k"]).read_bytes()).hexdigest()
    prompt = {"3": {"class_type": "LoadLoRA|LoRADeck", "inputs": {"lora_name": "friend\\renamed.safetensors"}},
              "4": {"class_type": "StackLoRA|LoRADeck", "inputs": {
                  "lora_name_1": "sub\\t.safetensors", "lora_name_2": "None", "lora_name_3": "gone.safetensors"}},
              "5": {"class_type": "Generate|LoRADeck", "inputs": {"prompt": "friend\\renamed.safetensors"}}}
    workflow = {"nodes": [{"id": 3, "properties": {"models": [{"name": "friend\\renamed.safetensors",
                                                                "directory": "loras", "hash": sha}]}}]}
    data = {"prompt": prompt, "extra_data": {"extra_pnginfo": {"workflow": workflow}}}
    assert comfy_server.on_prompt(lambda n, h: host.locate_lora(n, h, runtime))(data) is data
    assert prompt["3"]["inputs"]["lora_name"] == "k.safetensors"
    assert prompt["4"]["inputs"] == {"lora_name_1": "sub/t.safetensors", "lora_name_2": "None",
                                     "lora_name_3": "gone.safetensors"}  # missing: left for the node to report
    assert prompt["5"]["inputs"]["prompt"] == "friend\\renamed.safetensors"  # only LoRA names are touched
    assert comfy_server.on_prompt(host.locate_lora)({"prompt": "junk"}) == {"prompt": "junk"}


def test_validation_errors_say_each_reason_once_with_clean_punctuation(models, tmp_path):
    """ComfyUI reports a VALIDATE_INPUTS failure once per argument it takes: Load LoRA and LoRA List take one."""
    import inspect

    from loradeck.core.errors import IncompatibleLoraError, LoraFileError

    for node_id in ("LoadLoRA|LoRADeck", "LoRAList|LoRADeck"):
        assert len(inspect.signature(NODE_CLASS_MAPPINGS[node_id].VALIDATE_INPUTS).parameters) == 1
    message = NODE_CLASS_MAPPINGS["LoadLoRA|LoRADeck"].VALIDATE_INPUTS("sub/nope.safetensors")
    assert "not found" in message and ".." not in message and message.endswith(".")
    assert str(LoraFileError("x", "ends with a period.", "Do this.")) == "LoRA file 'x': ends with a period. Do this."
    state = load_file(str(models[1] / "a.safetensors"))
    key = next(k for k in state if k.endswith("lora_A.weight") and state[k].dim() == 2)
    state[key] = state[key][:, :-1].contiguous()  # one layer of another width: "does not fit ... suggest X."
    save_file(state, str(tmp_path / "wrong.safetensors"), metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    with pytest.raises(IncompatibleLoraError) as refused:
        Deck(make_pipe()).owner.describe(str(tmp_path / "wrong.safetensors"))
    # no doubled period; an ellipsis ("lora_A..." for a shortened key) is fine
    assert "SDXL" in str(refused.value) and not re.search(r"(?<!\.)\.\.(?!\.)", str(refused.value))
