"""Live check against a real ComfyUI: the pack imports, its nodes are listed, the demo workflow runs.

Skipped unless COMFYUI_ROOT points at a ComfyUI checkout (with main.py). The server is started with
COMFYUI_PYTHON (default: this interpreter), listens on a free 127.0.0.1 port, and writes its outputs,
temp files and user data into pytest's tmp_path. This pack is symlinked into custom_nodes/ for the run
unless custom_nodes/ already holds it (the symlink is removed afterwards).

    COMFYUI_ROOT=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python pytest tests/test_comfyui_live.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

COMFYUI_ROOT = os.environ.get("COMFYUI_ROOT", "")
PACK_ROOT = Path(__file__).resolve().parents[1]
API_WORKFLOW = PACK_ROOT / "example_workflows" / "api" / "loradeck-demo.api.json"
UI_WORKFLOW = PACK_ROOT / "example_workflows" / "loradeck-demo.json"
NODE_IDS = [
    "LoadPipeline|LoRADeck",
    "LoadLoRA|LoRADeck",
    "StackLoRA|LoRADeck",
    "SetAdapterWeights|LoRADeck",
    "FuseLoRA|LoRADeck",
    "UnfuseLoRA|LoRADeck",
    "Generate|LoRADeck",
    "LoRAGrid|LoRADeck",
    "SaveImage|LoRADeck",
]
DEMO_LORAS = ["loradeck-demo-style.safetensors", "loradeck-demo-kohya.safetensors"]
STARTUP_TIMEOUT = 240.0
RUN_TIMEOUT = 300.0

pytestmark = pytest.mark.skipif(not COMFYUI_ROOT, reason="set COMFYUI_ROOT to a ComfyUI checkout to run this test")

# Loopback only: never go through a proxy configured in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str, timeout: float = 30.0):
    with _OPENER.open(url, timeout=timeout) as resp:
        return json.load(resp)


def _post_json(url: str, payload, timeout: float = 30.0):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            body = resp.read()
            return json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"POST {url} -> HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None


def _log_tail(log_path: Path, chars: int = 6000) -> str:
    try:
        return log_path.read_text(errors="replace")[-chars:]
    except OSError:
        return "<no log>"


def _pack_in_custom_nodes(custom_nodes: Path) -> bool:
    """True when an enabled entry of custom_nodes/ is (or links to) this pack."""
    return any(
        entry.is_dir() and entry.resolve() == PACK_ROOT
        for entry in custom_nodes.iterdir()
        if not entry.name.endswith(".disabled")
    )


class _Server:
    def __init__(self, proc: subprocess.Popen, base: str, log_path: Path, output_dir: Path):
        self.proc, self.base, self.log_path, self.output_dir = proc, base, log_path, output_dir

    def fail(self, message: str):
        pytest.fail(f"{message}\n--- ComfyUI log (tail) ---\n{_log_tail(self.log_path)}")


def _wait_until_up(server: _Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if server.proc.poll() is not None:
            server.fail(f"ComfyUI exited during startup with code {server.proc.returncode}")
        try:
            _get_json(server.base + "/system_stats", timeout=5)
            return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            server.fail(f"ComfyUI did not answer on {server.base} within {STARTUP_TIMEOUT:.0f} s")
        time.sleep(1)


SINGLE_FILE = "tiny-flux-transformer-only.safetensors"
MARKERS_ONLY = "real-sd15-markers-only.safetensors"


def _single_file_models(models: Path) -> str:
    """Extra model folders for the run: a tiny Flux checkpoint without text encoders or VAE (those go to
    text_encoders/, clip/ and vae/) and a file with only SD 1.5's marker tensors (real shapes, no weights)."""
    import torch
    from safetensors.torch import save_file

    from family_fixtures import fresh
    from single_file_fixtures import split

    split("flux", fresh("flux"), str(models))
    markers = {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(320, 768),
               "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3)}
    save_file(markers, str(models / "checkpoints" / MARKERS_ONLY))
    config = models.parent / "extra_model_paths.yaml"
    config.write_text(f"loradeck_live:\n    base_path: {models}\n    checkpoints: checkpoints\n"
                      "    text_encoders: text_encoders\n    clip: clip\n    vae: vae\n")
    return str(config)


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory):
    root = Path(COMFYUI_ROOT).resolve()
    if not (root / "main.py").is_file():
        pytest.fail(f"COMFYUI_ROOT={COMFYUI_ROOT!r} has no main.py")
    python = os.environ.get("COMFYUI_PYTHON") or sys.executable
    custom_nodes = root / "custom_nodes"
    custom_nodes.mkdir(exist_ok=True)

    work = tmp_path_factory.mktemp("comfyui-live")
    output_dir, temp_dir, user_dir = work / "output", work / "temp", work / "user"
    for folder in (output_dir, temp_dir, user_dir):
        folder.mkdir()
    log_path = work / "comfyui.log"
    port = _free_port()
    cmd = [
        python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
        "--output-directory", str(output_dir), "--temp-directory", str(temp_dir),
        "--user-directory", str(user_dir), "--database-url", "sqlite:///:memory:",
        "--extra-model-paths-config", _single_file_models(work / "models"),
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")

    link = None
    if not _pack_in_custom_nodes(custom_nodes):
        link = custom_nodes / "loradeck"
        if link.exists() or link.is_symlink():
            pytest.fail(f"{link} exists and is not this pack ({PACK_ROOT}); remove it or link this pack there")
        link.symlink_to(PACK_ROOT, target_is_directory=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        server = _Server(proc, f"http://127.0.0.1:{port}", log_path, output_dir)
        try:
            _wait_until_up(server)
            yield server
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=20)
            if link is not None and link.is_symlink():
                link.unlink()


def test_pack_imports_and_nodes_are_listed(comfyui):
    log_text = comfyui.log_path.read_text(errors="replace")
    failed = [line for line in log_text.splitlines() if "IMPORT FAILED" in line and "loradeck" in line.lower()]
    if failed:
        comfyui.fail(f"ComfyUI could not import the pack: {failed}")

    info = _get_json(comfyui.base + "/object_info", timeout=60)
    missing = [node_id for node_id in NODE_IDS if node_id not in info]
    if missing:
        comfyui.fail(f"node IDs missing from /object_info: {missing}")
    lora_names = info["LoadLoRA|LoRADeck"]["input"]["required"]["lora_name"][0]
    for name in DEMO_LORAS:
        assert name in lora_names, f"{name} not offered by Load LoRA: {lora_names}"


def test_demo_workflow_runs(comfyui):
    prompt = json.loads(API_WORKFLOW.read_text())
    workflow = json.loads(UI_WORKFLOW.read_text())
    queued = _post_json(
        comfyui.base + "/prompt",
        {"prompt": prompt, "client_id": "loradeck-live-test", "extra_data": {"extra_pnginfo": {"workflow": workflow}}},
    )
    assert not queued.get("node_errors"), f"prompt rejected: {queued}"
    prompt_id = queued["prompt_id"]

    deadline = time.monotonic() + RUN_TIMEOUT
    entry = None
    while entry is None or entry.get("status", {}).get("completed") is None:
        if comfyui.proc.poll() is not None:
            comfyui.fail(f"ComfyUI exited while running the workflow (code {comfyui.proc.returncode})")
        if time.monotonic() > deadline:
            comfyui.fail(f"workflow did not finish within {RUN_TIMEOUT:.0f} s")
        time.sleep(1)
        entry = _get_json(f"{comfyui.base}/history/{prompt_id}").get(prompt_id)

    status = entry["status"]
    errors = [data for kind, data in status.get("messages", []) if kind in ("execution_error", "execution_interrupted")]
    if status.get("status_str") != "success" or errors:
        comfyui.fail(f"workflow failed: status={status.get('status_str')!r} errors={json.dumps(errors, indent=1)}")

    images = [image for output in entry["outputs"].values() for image in output.get("images", [])]
    assert len(images) == 4, f"expected 4 images, history lists {images}"
    written = sorted((comfyui.output_dir / "loradeck-demo").glob("*.png"))
    assert len(written) == 4, f"expected 4 PNGs in {comfyui.output_dir / 'loradeck-demo'}, found {written}"
    for image in images:
        path = comfyui.output_dir / image["subfolder"] / image["filename"]
        assert path.is_file() and path.stat().st_size > 0, f"{path} missing or empty"


PANEL_MODULES = ["panel.js", "node_info.js", "shared_names.js", "api_client.js", "panel_store.js", "panel_view.js"]


def test_panel_modules_are_served(comfyui):
    listed = _get_json(comfyui.base + "/extensions")
    ours = {url.rsplit("/", 1)[-1]: url for url in listed if "/loradeck/" in url}
    missing = [name for name in PANEL_MODULES if name not in ours]
    assert not missing, f"/extensions does not list {missing}: {listed}"
    for url in ours.values():
        with _OPENER.open(comfyui.base + url, timeout=30) as resp:
            assert resp.status == 200 and "javascript" in resp.headers.get("Content-Type", ""), url


def test_snapshot_route_answers_after_the_demo(comfyui):
    """Runs after test_demo_workflow_runs (file order): the panel's route lists the demo's pipeline."""
    data = _get_json(comfyui.base + "/api/loradeck/snapshot")
    labels = [p["label"] for p in data["pipelines"]]
    assert "tiny-sd (built-in) [auto]" in labels, data
    assert data["recent"], "no snapshot was published while the demo ran"
    adapters = {a["name"] for s in data["recent"] for a in s["adapters"]}
    assert {"loradeck-demo-style", "loradeck-demo-kohya", "detail"} <= adapters


def _close_dialogs(page, tries: int = 20) -> None:
    """Escape any dialog the frontend opened over the sidebar (a release note, a first-run tip)."""
    for _ in range(tries):
        page.wait_for_timeout(500)
        if not page.locator(".p-dialog-mask").count():
            return
        page.keyboard.press("Escape")


def _ours(message: str, url: str | None) -> bool:
    return "loradeck" in (message + (url or "")).lower()


def test_panel_opens_in_the_real_frontend_without_errors(comfyui):
    """The real ComfyUI frontend in chromium: the LoRA Deck tab lists the demo pipeline; our JS logs no errors."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = os.environ.get("LORADECK_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        pytest.skip(f"no chromium at {chromium}")
    problems: list[str] = []
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
                and _ours(m.text, m.location.get("url")) else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        _post_json(comfyui.base + "/api/settings/Comfy.TutorialCompleted", True)  # no templates dialog on top
        page.goto(comfyui.base)
        page.wait_for_function("window.app && window.app.extensionManager", timeout=120_000)
        _close_dialogs(page)
        page.click(".loradeck-tab-button", timeout=60_000)
        page.wait_for_selector("[data-testid=loradeck-panel] .loradeck-pipeline", timeout=60_000)
        text = page.inner_text("[data-testid=loradeck-panel]")
        out = Path(os.environ.get("LORADECK_TEST_OUTPUT") or PACK_ROOT / "tests" / "_output")
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / "comfyui-live-panel.png"))
        browser.close()
    assert "tiny-sd (built-in) [auto]" in text
    assert not problems, problems


def _wait_for_history(comfyui, prompt_id: str, timeout: float = RUN_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = _get_json(f"{comfyui.base}/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            return entry
        time.sleep(0.5)
    comfyui.fail(f"prompt {prompt_id} did not finish within {timeout:.0f} s")


def test_cancel_stops_generate_within_a_step(comfyui):
    """Interrupt a 999-step Generate: it stops at once (ComfyUI's Cancel), and the pipeline still works."""
    long_run = {
        "1": {"class_type": "LoadPipeline|LoRADeck", "inputs": {"model_name": "tiny-sd (built-in)", "dtype": "auto"}},
        "2": {"class_type": "Generate|LoRADeck", "inputs": {
            "pipeline": ["1", 0], "prompt": "a lighthouse", "negative_prompt": "", "seed": 1, "steps": 999,
            "cfg": 7.0, "width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    prompt_id = _post_json(comfyui.base + "/prompt", {"prompt": long_run, "client_id": "loradeck-cancel"})["prompt_id"]
    deadline = time.monotonic() + 60
    while not _get_json(comfyui.base + "/queue")["queue_running"]:
        assert time.monotonic() < deadline, "the long Generate never started"
        time.sleep(0.2)
    time.sleep(2)  # well into the denoising loop
    asked = time.monotonic()
    _post_json(comfyui.base + "/interrupt", {})
    entry = _wait_for_history(comfyui, prompt_id, timeout=60)
    stopped_after = time.monotonic() - asked
    kinds = [kind for kind, _ in entry["status"].get("messages", [])]
    assert "execution_interrupted" in kinds, entry["status"]
    assert stopped_after < 20, f"Generate took {stopped_after:.1f} s to stop"
    long_run["2"]["inputs"]["steps"] = 2
    again = _post_json(comfyui.base + "/prompt", {"prompt": long_run, "client_id": "loradeck-cancel"})["prompt_id"]
    assert _wait_for_history(comfyui, again)["status"]["status_str"] == "success"


def _run_prompt(comfyui, prompt: dict) -> dict:
    queued = _post_json(comfyui.base + "/prompt", {"prompt": prompt, "client_id": "loradeck-single-file"})
    assert not queued.get("node_errors"), f"prompt rejected: {queued}"
    return _wait_for_history(comfyui, queued["prompt_id"])


def test_single_file_checkpoint_loads_inside_comfyui(comfyui):
    """A transformer-only checkpoint in ComfyUI's checkpoints folder, its encoders and VAE in ComfyUI's
    text_encoders/clip/vae folders: listed by Load Pipeline, loaded and run with no diffusers folder."""
    info = _get_json(comfyui.base + "/object_info/LoadPipeline%7CLoRADeck")
    assert SINGLE_FILE in info["LoadPipeline|LoRADeck"]["input"]["required"]["model_name"][0]
    prompt = {
        "1": {"class_type": "LoadPipeline|LoRADeck", "inputs": {"model_name": SINGLE_FILE, "dtype": "float32"}},
        "2": {"class_type": "Generate|LoRADeck", "inputs": {
            "pipeline": ["1", 0], "prompt": "a photo of a cat", "negative_prompt": "", "seed": 3, "steps": 2,
            "cfg": 1.0, "width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    entry = _run_prompt(comfyui, prompt)
    if entry["status"]["status_str"] != "success":
        comfyui.fail(f"single-file workflow failed: {json.dumps(entry['status'], indent=1)}")
    log_text = comfyui.log_path.read_text(errors="replace")
    assert "single file: text_encoder_2 from" in log_text and "t5xxl_tiny.safetensors" in log_text


def test_single_file_tokenizers_come_from_comfyuis_own_folder(comfyui):
    """A real-size SD 1.5 checkpoint (marker tensors only): inside ComfyUI its CLIP tokenizer is ComfyUI's
    bundled comfy/sd1_tokenizer, so the load gets past the tokenizers and stops at the missing weights."""
    prompt = {"1": {"class_type": "LoadPipeline|LoRADeck", "inputs": {"model_name": MARKERS_ONLY, "dtype": "auto"}},
              "2": {"class_type": "Generate|LoRADeck", "inputs": {
                  "pipeline": ["1", 0], "prompt": "a cat", "negative_prompt": "", "seed": 1, "steps": 1,
                  "cfg": 1.0, "width": 64, "height": 64, "batch_size": 1}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    entry = _run_prompt(comfyui, prompt)
    errors = [data for kind, data in entry["status"].get("messages", []) if kind == "execution_error"]
    assert errors, entry["status"]
    message = errors[0].get("exception_message", "")
    assert "Stable Diffusion 1.x checkpoint" in message and "CLIP-L text encoder" in message, message
    assert "tokenizer files" not in message, message
    sd1_tokenizer = str(Path(COMFYUI_ROOT).resolve() / "comfy" / "sd1_tokenizer")
    log_text = comfyui.log_path.read_text(errors="replace")
    assert f"single file: tokenizer from {sd1_tokenizer}" in log_text, _log_tail(comfyui.log_path)


def test_save_image_node_writes_a1111_parameters(comfyui):
    import a1111_parser
    from PIL import Image
    from test_save_image import KOHYA, STYLE, _autov2, _workflow

    entry = _run_prompt(comfyui, _workflow())
    if entry["status"]["status_str"] != "success":
        comfyui.fail(f"workflow failed: {json.dumps(entry['status'], indent=1)}")
    images = [image for output in entry["outputs"].values() for image in output.get("images", [])]
    assert [image["filename"] for image in images] == ["tagged_00001_.png", "tagged_00002_.png"]
    for image in images:
        chunks = Image.open(comfyui.output_dir / image["subfolder"] / image["filename"]).text
        assert "prompt" in chunks
        loras = {r["name"]: r["hash"] for r in a1111_parser.parse(chunks["parameters"])["resources"]
                 if r["type"] == "lora"}
        assert loras == {STYLE: _autov2(STYLE), KOHYA: _autov2(KOHYA)}
