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


def _post_json(url: str, payload: dict, timeout: float = 30.0):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return json.load(resp)
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
