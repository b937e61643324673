"""Live check against a real ComfyUI: the pack imports, its nodes are listed, the demo workflow runs.

Skipped unless COMFYUI_ROOT points at a ComfyUI checkout (with main.py). The server is started with
COMFYUI_PYTHON (default: this interpreter), listens on a free 127.0.0.1 port, and writes its outputs,
temp files and user data into pytest's tmp_path. This pack is symlinked into custom_nodes/ for the run
unless custom_nodes/ already holds it (the symlink is removed afterwards).

    COMFYUI_ROOT=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python pytest tests/test_comfyui_live.py
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

COMFYUI_ROOT = os.environ.get("COMFYUI_ROOT", "")
FRONTEND = os.environ.get("COMFYUI_FRONTEND_ROOT", "")  # a frontend's static folder (--front-end-root); default: pip's
PACK_ROOT = Path(__file__).resolve().parents[1]
API_WORKFLOW = PACK_ROOT / "example_workflows" / "api" / "loradeck-demo.api.json"
UI_WORKFLOW = PACK_ROOT / "example_workflows" / "loradeck-demo.json"
VIDEO_API = PACK_ROOT / "example_workflows" / "api" / "loradeck-video.api.json"
VIDEO_UI = PACK_ROOT / "example_workflows" / "loradeck-video.json"
NODE_IDS = [
    "LoadPipeline|LoRADeck",
    "LoadLoRA|LoRADeck",
    "StackLoRA|LoRADeck",
    "SetAdapterWeights|LoRADeck",
    "FuseLoRA|LoRADeck",
    "UnfuseLoRA|LoRADeck",
    "Generate|LoRADeck",
    "LoRAList|LoRADeck",
    "LoRAGrid|LoRADeck",
    "SaveImage|LoRADeck",
    "LoadLoRAPair|LoRADeck",
    "LoadDiffusionModel|LoRADeck",
]
DEMO_LORAS = ["loradeck-demo-style.safetensors", "loradeck-demo-kohya.safetensors"]
KOHYA, STYLE = DEMO_LORAS[1], DEMO_LORAS[0]
MOVED_NAME = "friend-kohya.safetensors"  # in models/loras/moved/: the kohya demo LoRA under another name
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


class _Server:
    def __init__(self, proc: subprocess.Popen, base: str, log_path: Path, output_dir: Path):
        self.proc, self.base, self.log_path, self.output_dir = proc, base, log_path, output_dir

    def fail(self, message: str):
        pytest.fail(f"{message}\n--- ComfyUI log (tail) ---\n{_log_tail(self.log_path)}")


def _stop(proc: subprocess.Popen) -> None:
    """End a ComfyUI server: terminate, then kill if it does not exit within 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


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
# ComfyUI's split layout: denoisers in diffusion_models/ (and the older unet/), made by ComfyUI's / ComfyUI-GGUF's code
FLUX_LORA = PACK_ROOT / "tests" / "fixtures" / "trainers" / "flux_kohya_bf16.safetensors"  # sd-scripts' BFL names
SPLIT_FILES = {"diffusion_models": ("flux_tiny_fp8_e4m3fn_scaled.safetensors", "flux_tiny-Q4_0.gguf"),
               "unet": ("flux_tiny-Q8_0.gguf",), "text_encoders": ("t5_tiny_fp8_e4m3fn_scaled.safetensors",)}
# the long tail's split files (fixture -> where it goes, under the names the family tests give it), each family run
# with its own LoRA. The VAEs are written from the tiny pipelines as the family tests write them: the real FLUX.1 VAE
# is one ae.safetensors for FLUX.1 and Lumina 2, but the tiny ones differ, and the tiny Lumina 2's has the shapes of
# the tiny AuraFlow's SDXL VAE (the real ones do not): so it sits in a subfolder, as users sort VAEs, and is picked.
LONG_TAIL_ENCODERS = {"lumina2": "text_encoders/gemma_2_2b_fp16.safetensors",
                      "auraflow": "text_encoders/pile_t5xl_bf16.safetensors"}
LONG_TAIL_FILES = {"lumina2_tiny-Q8_0.gguf": "diffusion_models/lumina2_tiny-Q8_0.gguf",
                   "lumina2_tiny-Q4_0.gguf": "unet/lumina2_tiny-Q4_0.gguf",
                   "lumina2_tiny_te_bf16.safetensors": LONG_TAIL_ENCODERS["lumina2"],
                   "auraflow_tiny_fp8_e4m3fn_scaled.safetensors":
                       "diffusion_models/auraflow_tiny_fp8_e4m3fn_scaled.safetensors",
                   "auraflow_tiny-Q4_0.gguf": "diffusion_models/auraflow_tiny-Q4_0.gguf",
                   "auraflow_tiny_te_bf16.safetensors": LONG_TAIL_ENCODERS["auraflow"]}
LONG_TAIL_VAES = {"lumina2": "vae/lumina2/ae.safetensors", "auraflow": "vae/sdxl_vae.safetensors"}


def _single_file_models(models: Path) -> str:
    """Extra model folders for the run: a tiny Flux checkpoint without text encoders or VAE (those go to
    text_encoders/, clip/ and vae/) and a file with only SD 1.5's marker tensors (real shapes, no weights)."""
    import torch
    from safetensors.torch import save_file

    from family_fixtures import fresh
    from original_layout import vae_to_ldm
    from single_file_fixtures import save, split

    split("flux", fresh("flux"), str(models))
    markers = {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(320, 768),
               "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3)}
    save_file(markers, str(models / "checkpoints" / MARKERS_ONLY))
    fixtures = PACK_ROOT / "tests" / "fixtures" / "model_files"
    for folder, names in SPLIT_FILES.items():
        (models / folder).mkdir(exist_ok=True)
        for name in names:
            shutil.copyfile(fixtures / name, models / folder / name)
    for name, where in LONG_TAIL_FILES.items():
        (models / where).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fixtures / name, models / where)
    for family, where in LONG_TAIL_VAES.items():  # BFL's / SAI's LDM names, no prefix
        save(vae_to_ldm(fresh(family).vae.state_dict(), prefix=""), str(models / where))
    config = models.parent / "extra_model_paths.yaml"
    config.write_text(f"loradeck_live:\n    base_path: {models}\n    checkpoints: checkpoints\n"
                      "    text_encoders: text_encoders\n    clip: clip\n    vae: vae\n"
                      "    diffusion_models: diffusion_models\n    unet: unet\n")
    return str(config)


LINKED_FILE, LINKED_FOLDER_FILE = "linked_seed2.safetensors", "acc_linked/kohya_far.safetensors"
LINKED_MODEL = "tiny-sd15"


def _symlinked_models(base: Path) -> None:
    """Models kept outside the model folders and linked in, as users share them between installs: a LoRA file, a
    folder of LoRAs and a diffusers model folder (each of other content than the demo files)."""
    from helpers import make_pipe
    from lora_fixtures import save_diffusers_lora, save_kohya_lora

    elsewhere = base / "elsewhere"
    (elsewhere / "acc").mkdir(parents=True)
    save_diffusers_lora(str(elsewhere / "seed2.safetensors"), seed=2)
    save_kohya_lora(str(elsewhere / "acc" / "kohya_far.safetensors"), seed=3)
    make_pipe().save_pretrained(str(elsewhere / LINKED_MODEL))
    loras = base / "models" / "loras"
    (loras / LINKED_FILE).symlink_to(elsewhere / "seed2.safetensors")
    (loras / "acc_linked").symlink_to(elsewhere / "acc", target_is_directory=True)
    (base / "models" / "diffusers").mkdir(parents=True, exist_ok=True)
    (base / "models" / "diffusers" / LINKED_MODEL).symlink_to(elsewhere / LINKED_MODEL, target_is_directory=True)


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory):
    """ComfyUI with this pack only: a private --base-directory whose custom_nodes/ links this pack (nothing else is
    loaded, nothing is written to COMFYUI_ROOT) and whose models/loras/ holds a moved copy of a demo LoRA."""
    from lora_fixtures import save_family_lora

    root = Path(COMFYUI_ROOT).resolve()
    if not (root / "main.py").is_file():
        pytest.fail(f"COMFYUI_ROOT={COMFYUI_ROOT!r} has no main.py")
    python = os.environ.get("COMFYUI_PYTHON") or sys.executable
    base = tmp_path_factory.mktemp("comfyui-live")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "loradeck").symlink_to(PACK_ROOT, target_is_directory=True)
    moved = base / "models" / "loras" / "moved"
    moved.mkdir(parents=True)
    shutil.copyfile(PACK_ROOT / "demo" / "models" / "loras" / KOHYA, moved / MOVED_NAME)
    shutil.copyfile(FLUX_LORA, base / "models" / "loras" / FLUX_LORA.name)  # for the split-file model
    for family in LONG_TAIL_VAES:  # the long tail's: on their transformers, as diffusers' loaders save them
        save_family_lora(family, str(base / "models" / "loras" / f"{family}-tiny-lora.safetensors"), seed=2)
    _symlinked_models(base)
    log_path = base / "comfyui.log"
    port = _free_port()
    cmd = [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
           "--disable-all-custom-nodes", "--whitelist-custom-nodes", "loradeck", "--database-url", "sqlite:///:memory:",
           "--extra-model-paths-config", _single_file_models(base / "single-file" / "models")]
    if FRONTEND:
        cmd += ["--front-end-root", FRONTEND]
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        server = _Server(proc, f"http://127.0.0.1:{port}", log_path, base / "output")
        try:
            _wait_until_up(server)
            yield server
        finally:
            _stop(proc)


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


def test_symlinked_loras_and_model_folder_are_listed_and_run(comfyui):
    """A linked LoRA file, a LoRA in a linked folder and a linked diffusers folder are offered as ComfyUI offers
    them, and a graph using all three runs."""
    info = _get_json(comfyui.base + "/object_info", timeout=60)
    loras = info["LoadLoRA|LoRADeck"]["input"]["required"]["lora_name"][0]
    assert {LINKED_FILE, LINKED_FOLDER_FILE} <= set(loras), loras
    assert LINKED_MODEL in info["LoadPipeline|LoRADeck"]["input"]["required"]["model_name"][0]
    gen = {"prompt": "a lighthouse", "negative_prompt": "", "seed": 1, "steps": 2, "cfg": 7.0, "width": 64,
           "height": 64, "batch_size": 1}
    prompt = {
        "1": {"class_type": "LoadPipeline|LoRADeck", "inputs": {"model_name": LINKED_MODEL, "dtype": "float32"}},
        "2": {"class_type": "LoadLoRA|LoRADeck", "inputs": {"pipeline": ["1", 0], "lora_name": LINKED_FILE,
                                                              "strength_model": 1.0, "strength_clip": 1.0}},
        "3": {"class_type": "LoadLoRA|LoRADeck", "inputs": {"pipeline": ["2", 0], "lora_name": LINKED_FOLDER_FILE,
                                                              "strength_model": 0.5, "strength_clip": 1.0}},
        "4": {"class_type": "Generate|LoRADeck", "inputs": {"pipeline": ["3", 0], **gen},
              "_meta": {"title": "Generate linked"}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    entry = _run_prompt(comfyui, prompt)
    if entry["status"]["status_str"] != "success":
        comfyui.fail(f"linked models failed: {json.dumps(entry['status'], indent=1)}")
    (branch,) = [b for p in _get_json(comfyui.base + "/api/loradeck/snapshot")["pipelines"] for b in p["branches"]
                 if b["source_title"] == "Generate linked"]
    assert [a["name"] for a in branch["adapters"]] == ["linked_seed2", "kohya_far"], branch


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
    assert len(images) == 7, f"expected 7 images, history lists {images}"
    written = sorted((comfyui.output_dir / "loradeck-demo").glob("*.png"))
    assert len(written) == 7, f"expected 7 PNGs in {comfyui.output_dir / 'loradeck-demo'}, found {written}"
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
    (demo,) = [p for p in data["pipelines"] if p["label"] == "tiny-sd (built-in) [auto]"]
    titles = {b["source_title"] for b in demo["branches"]}
    assert {"Generate (fused)", "Generate (unfused)", "Generate (one LoRA)", "Generate (no LoRA)"} <= titles


def test_help_pages_and_template_thumbnails_are_served(comfyui):
    """The frontend asks /extensions/<pack>/docs/<node ID>.md for help, and <template>.jpg for a thumbnail."""
    for node_id in NODE_IDS:
        url = f"{comfyui.base}/extensions/loradeck/docs/{urllib.parse.quote(node_id)}.md"
        with _OPENER.open(url, timeout=30) as resp:
            assert resp.status == 200 and resp.read().startswith(b"# "), node_id
    templates = _get_json(comfyui.base + "/api/workflow_templates")["loradeck"]
    assert "loradeck-demo" in templates
    for name in templates:
        with _OPENER.open(f"{comfyui.base}/api/workflow_templates/loradeck/{urllib.parse.quote(name)}.jpg") as resp:
            assert resp.status == 200 and resp.read(3) == b"\xff\xd8\xff", name


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shared_prompt(name: str, recorded: str) -> tuple[dict, dict]:
    """A Load LoRA -> Generate -> Preview graph naming ``name``, with ``recorded`` as the hash saved with the node."""
    prompt = {
        "1": {"class_type": "LoadPipeline|LoRADeck", "inputs": {"model_name": "tiny-sd (built-in)", "dtype": "auto"}},
        "2": {"class_type": "LoadLoRA|LoRADeck", "inputs": {"pipeline": ["1", 0], "lora_name": name,
                                                              "strength_model": 1.0, "strength_clip": 1.0}},
        "3": {"class_type": "Generate|LoRADeck", "inputs": {
            "pipeline": ["2", 0], "prompt": "a lighthouse", "negative_prompt": "", "seed": 1, "steps": 2,
            "cfg": 7.0, "width": 64, "height": 64, "batch_size": 1}, "_meta": {"title": "Generate shared"}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    workflow = {"nodes": [{"id": 2, "type": "LoadLoRA|LoRADeck", "properties": {"models": [
        {"name": name, "url": f"urn:sha256:{recorded}", "directory": "loras", "hash": recorded,
         "hash_type": "SHA256"}]}}]}
    return prompt, {"workflow": workflow}


def _run(comfyui, prompt: dict, extra: dict) -> dict:
    queued = _post_json(comfyui.base + "/prompt", {"prompt": prompt, "client_id": "loradeck-shared",
                                                   "extra_data": {"extra_pnginfo": extra}})
    assert not queued.get("node_errors"), queued
    return _wait_for_history(comfyui, queued["prompt_id"])


def test_shared_workflow_whose_lora_moved_runs_with_the_right_file(comfyui):
    """Saved elsewhere as 'friend\\renamed.safetensors' with its SHA-256: here the file has another name and folder."""
    kohya = _sha(PACK_ROOT / "demo" / "models" / "loras" / KOHYA)
    entry = _run(comfyui, *_shared_prompt("friend\\renamed.safetensors", kohya))
    assert entry["status"]["status_str"] == "success", entry["status"]
    shared = [b for p in _get_json(comfyui.base + "/api/loradeck/snapshot")["pipelines"] for b in p["branches"]
              if b["source_title"] == "Generate shared"]
    assert [a["sha256"] for a in shared[0]["adapters"]] == [kohya]


def test_shared_workflow_with_a_same_named_file_of_other_content_is_a_clear_error(comfyui):
    """Only one file here has the workflow's file name, but not the content it recorded (and no file here has
    that content): refused, never used."""
    entry = _run(comfyui, *_shared_prompt(f"elsewhere/{MOVED_NAME}", "ab" * 32))
    assert entry["status"]["status_str"] == "error"
    (error,) = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    assert "has its file name but different content" in error["exception_message"], error
    assert not re.search(r"(?<!\.)\.\.(?!\.)", error["exception_message"])  # no doubled period (an ellipsis is fine)


def _close_dialogs(page, tries: int = 20) -> None:
    """Escape any dialog the frontend opened over the sidebar (a release note, a first-run tip)."""
    for _ in range(tries):
        page.wait_for_timeout(500)
        if not page.locator(".p-dialog-mask").count():
            return
        page.keyboard.press("Escape")


def _ours(message: str, url: str | None) -> bool:
    """A console message from our JS. Not: 1.58.1's own error for its history request, which ComfyUI 0.8 refuses
    (/api/jobs with status 'cancelled': HTTP 400); its stack names our file since getHistory is wrapped."""
    return "loradeck" in (message + (url or "")).lower() and "Failed to fetch jobs: 400" not in message


@pytest.fixture(scope="module")
def browser():
    """One chromium for the module's browser tests."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = os.environ.get("LORADECK_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        pytest.skip(f"no chromium at {chromium}")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, args=args)
        yield launched
        launched.close()


def _open(browser, comfyui, vue: bool = False):
    """A fresh tab on the real frontend (Nodes 2.0 when ``vue``); ``page.problems`` collects our JS's errors and
    everything that mentions the workflow schema (zod)."""
    _post_json(comfyui.base + "/api/settings/Comfy.TutorialCompleted", True)  # no templates dialog on top
    _post_json(comfyui.base + "/api/settings/Comfy.VueNodes.Enabled", vue)
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if (m.type in ("error", "warning") and _ours(
        m.text, m.location.get("url"))) or "zod" in m.text.lower() else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(comfyui.base)
    page.wait_for_function("window.app && window.app.extensionManager && window.app.graph", timeout=120_000)
    _close_dialogs(page)
    return page, problems


def _screenshot(page, name: str) -> None:
    out = Path(os.environ.get("LORADECK_TEST_OUTPUT") or PACK_ROOT / "tests" / "_output")
    out.mkdir(parents=True, exist_ok=True)
    # the frontend version: the folder a wheel was unpacked into (<ver>/comfyui_frontend_package/static), or its name
    versions = [p.name for p in Path(FRONTEND).parents if re.fullmatch(r"\d+(\.\d+)+", p.name)] if FRONTEND else []
    version = versions[0] if versions else Path(FRONTEND).name if FRONTEND else "default"
    page.screenshot(path=str(out / f"comfyui-live-{version}-{name}.png"))


TAB = "[data-testid=loradeck-tab-button], .loradeck-tab-button"  # 1.58.1 dropped the class, 1.35.9 has no testid


RENDERERS = pytest.mark.parametrize("vue", [False, True], ids=["classic", "nodes-2.0"])
BRANCHES = """() => [...document.querySelectorAll('[data-testid=loradeck-panel] section.loradeck-pipeline')]
    .map((card) => [...card.querySelectorAll('.loradeck-branch')].map((b) => [b.dataset.source, b.dataset.current]))"""


@RENDERERS
def test_panel_opens_in_the_real_frontend_without_errors(comfyui, browser, vue):
    """The real ComfyUI frontend in chromium: the LoRA Deck tab lists the demo pipeline's branches, newest first
    (the model's current one on top), in the same order after Refresh; our JS logs no errors."""
    page, problems = _open(browser, comfyui, vue)
    page.locator(TAB).first.click(timeout=60_000)
    page.wait_for_selector("[data-testid=loradeck-panel] .loradeck-branch", timeout=60_000)
    text = page.inner_text("[data-testid=loradeck-panel]")
    opened = page.evaluate(BRANCHES)
    page.click("[data-testid=loradeck-panel] .loradeck-refresh")
    page.wait_for_timeout(1500)
    refreshed = page.evaluate(BRANCHES)
    _screenshot(page, "panel-" + ("nodes-2.0" if vue else "classic"))
    page.close()
    assert "tiny-sd (built-in) [auto]" in text and "Generate (fused)" in text and "in the model now" in text
    assert opened == refreshed and all(card[0][1] == "true" for card in opened if card), (opened, refreshed)
    assert not problems, problems


def _workflow() -> dict:
    """A UI workflow saved elsewhere: Load LoRA naming a moved file (recorded hash), LoRA List rows (one by hash)."""
    sys.path.insert(0, str(PACK_ROOT / "tools"))
    import make_example_workflows as examples

    kohya, style = (_sha(PACK_ROOT / "demo" / "models" / "loras" / n) for n in (KOHYA, STYLE))
    rows = [{"enabled": True, "lora_name": STYLE, "strength_model": 0.8, "strength_clip": 0.5, "sha256": style},
            {"enabled": True, "lora_name": "old/folder/kohya-renamed.safetensors", "strength_model": 0.7,
             "strength_clip": 1.0, "sha256": kohya}]
    gen = dict(examples.GEN, steps=2, width=64, height=64)
    moved = "C:\\friend\\old-name.safetensors"
    graph = {
        1: ("LoadPipeline|LoRADeck", "Tiny SD", {"model_name": "tiny-sd (built-in)", "dtype": "auto"}, {}, (40, 300)),
        2: ("LoRAList|LoRADeck", "LoRA list", {"loras": json.dumps(rows)}, {"pipeline": (1, 0)}, (400, 40)),
        3: ("Generate|LoRADeck", "Generate list", gen, {"pipeline": (2, 0)}, (800, 40)),
        4: ("PreviewImage", "Preview list", {}, {"images": (3, 0)}, (1200, 40)),
        5: ("LoadLoRA|LoRADeck", "Moved LoRA", {"lora_name": moved, "strength_model": 1.0, "strength_clip": 1.0,
                                                "adapter_name": ""}, {"pipeline": (1, 0)}, (400, 500)),
        6: ("Generate|LoRADeck", "Generate moved", gen, {"pipeline": (5, 0)}, (800, 500)),
        7: ("PreviewImage", "Preview moved", {}, {"images": (6, 0)}, (1200, 500)),
    }
    workflow = examples.to_ui(graph, "shared from another machine")
    workflow["nodes"][4]["properties"]["models"] = [{"name": moved, "directory": "loras", "url": f"urn:sha256:{kohya}",
                                                     "hash": kohya, "hash_type": "SHA256"}]
    return workflow


def _load(page, workflow: dict) -> None:
    page.evaluate("(workflow) => window.app.loadGraphData(workflow)", workflow)
    page.wait_for_timeout(3000)


def _missing_models_shown(page) -> str:
    """The text of the frontend's missing-model report, if any (1.35.9: a dialog; 1.58.1: a toast per model, and the
    models its own missing-model store flags, which drive the Issues badge until they are fixed or refreshed)."""
    dialogs = [d for d in page.locator(".p-dialog").all_inner_texts() if "Missing Models" in d or "loras /" in d]
    toasts = [t for t in page.locator(".p-toast-message").all_inner_texts() if "is missing" in t]
    flagged = page.evaluate("""() => {
        const pinia = document.querySelector('#vue-app')?.__vue_app__?.config.globalProperties.$pinia;
        const store = pinia?._s.get('missingModel');  // 1.58.1; 1.35.9 has no such store
        return (store?.visibleMissingModelCandidates ?? []).map((m) => `flagged: ${m.directory} / ${m.name}`);
    }""")
    return "\n".join(dialogs + toasts + flagged)


def _dismiss(page) -> None:
    page.keyboard.press("Escape")
    for close in page.locator(".p-toast-close-button").all():
        close.click()
    page.wait_for_timeout(500)


def _lora_names(page) -> dict:
    return page.evaluate("""() => Object.fromEntries(window.app.graph._nodes.map((n) => [String(n.id),
        n.widgets?.find((w) => w.name === 'lora_name' || w.name === 'loras')?.value]).filter(([, v]) => v))""")


def test_a_shared_workflow_reopens_and_runs_in_the_real_frontend(comfyui, browser):
    """Names from another machine are switched to local files before the frontend checks for missing models (no
    missing-model report, no schema alert); the graph runs from the browser; the hashes it records are saved and the
    saved workflow reopens cleanly too. A LoRA that is nowhere is reported once, by its node's box, with its name."""
    page, problems = _open(browser, comfyui)
    _load(page, _workflow())
    assert not _missing_models_shown(page)
    page.wait_for_function("document.body.innerText.includes('SHA-256 recorded in the workflow')", timeout=30_000)
    assert "zod" not in page.inner_text("body").lower()
    names = _lora_names(page)
    assert names["5"] in (KOHYA, f"moved/{MOVED_NAME}")
    assert [r["lora_name"] for r in json.loads(names["2"])][1] in (KOHYA, f"moved/{MOVED_NAME}")
    before = set(_get_json(comfyui.base + "/history"))
    page.evaluate("window.app.queuePrompt(0, 1)")
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (ran := set(_get_json(comfyui.base + "/history")) - before) and time.monotonic() < deadline:
        time.sleep(1)
    assert ran, "the graph queued from the browser never finished"
    assert _wait_for_history(comfyui, ran.pop())["status"]["status_str"] == "success"
    page.wait_for_timeout(2000)
    saved = page.evaluate("JSON.parse(JSON.stringify(window.app.graph.serialize()))")  # as a saved file has it
    recorded = [m for n in saved["nodes"] for m in (n.get("properties") or {}).get("models") or []]
    assert all(m.get("url", "").startswith("urn:sha256:") and m.get("hash") for m in recorded), recorded
    _dismiss(page)
    _load(page, saved)  # reopen the saved workflow
    assert not _missing_models_shown(page) and "zod" not in page.inner_text("body").lower()
    _screenshot(page, "shared-workflow")
    gone = _workflow()
    gone["nodes"][4]["widgets_values"][0] = "gone/nowhere.safetensors"
    gone["nodes"][4]["properties"]["models"] = [{"name": "gone/nowhere.safetensors", "directory": "loras",
                                                 "url": "urn:sha256:" + "ab" * 32, "hash": "ab" * 32}]
    _dismiss(page)
    _load(page, gone)
    # said once, by the node's own box (its name, the closest names, the fix), not by the frontend's report too
    page.wait_for_function("document.body.innerText.includes('gone/nowhere.safetensors: was not found')",
                           timeout=30_000)
    assert not _missing_models_shown(page)
    _screenshot(page, "missing-lora")
    page.close()
    ours = [p for p in problems if "urn:sha256" not in p]  # the 1.35.9 dialog asks the file size of its url
    assert not ours, ours


@RENDERERS
def test_lora_list_rows_in_both_renderers(comfyui, browser, vue):
    """LoRA List's rows render and edit in the classic renderer and in Nodes 2.0; the widget value follows."""
    page, problems = _open(browser, comfyui, vue)
    _load(page, _workflow())
    rows = page.locator("[data-testid=loradeck-rows]").first
    rows.wait_for(timeout=30_000)
    assert rows.locator(".loradeck-row:not(.loradeck-row-head)").count() == 2
    rows.locator(".loradeck-row-add").click()
    page.wait_for_timeout(1500)
    value = lambda: json.loads(_lora_names(page)["2"])  # noqa: E731
    assert len(value()) == 3 and rows.locator(".loradeck-row:not(.loradeck-row-head)").count() == 3
    rows.locator('[data-row="0"] .loradeck-row-on').click()
    page.wait_for_timeout(300)
    assert value()[0]["enabled"] is False
    _screenshot(page, "lora-list-" + ("nodes-2.0" if vue else "classic"))
    page.close()
    assert not problems, problems


BOXES = """() => [...window.app.graph._nodes].flatMap((node) => (node.widgets ?? [])
    .filter((w) => w.name === 'loradeck_info' && w.element && w.body && node.mode === 0).map((w) => {
      const box = w.element.getBoundingClientRect();
      const scale = box.height / (w.element.offsetHeight || 1);
      const card = document.querySelector(`[data-node-id="${node.id}"]`);
      let bottom;  // the node's bottom edge on the screen
      if (card) bottom = card.getBoundingClientRect().bottom;
      else {
        const canvas = window.app.canvas, top = canvas.canvas.getBoundingClientRect().top;
        bottom = top + (node.pos[1] + node.size[1] + canvas.ds.offset[1]) * canvas.ds.scale;
      }
      return {title: node.title, box: w.element.offsetHeight, text: w.body.scrollHeight,
              below: Math.round((bottom - box.bottom) / scale), lines: w.body.innerText.split('\\n').length};
    }))"""


@RENDERERS
def test_info_boxes_are_as_tall_as_their_text(comfyui, browser, vue):
    """The node's box shows all of its text and no more: an error (a file that is nowhere) and a long match report
    (two LoRAs, after a run), in the classic renderer and Nodes 2.0; the node ends just below the box."""
    page, problems = _open(browser, comfyui, vue)
    gen = dict(_gen(), prompt="loradeck detail")
    rows = [{"enabled": True, "lora_name": STYLE, "strength_model": 1.0, "strength_clip": 1.0, "sha256": ""},
            {"enabled": True, "lora_name": LINKED_FOLDER_FILE, "strength_model": 0.6 if vue else 0.7,
             "strength_clip": 0.5,  # other values in each renderer: a node ComfyUI reuses from its cache is not run
             "sha256": ""}]
    graph = {
        1: ("LoadPipeline|LoRADeck", "Tiny SD", {"model_name": "tiny-sd (built-in)", "dtype": "auto"}, {}, (40, 300)),
        2: ("LoRAList|LoRADeck", "LoRA list", {"loras": json.dumps(rows)}, {"pipeline": (1, 0)}, (400, 40)),
        3: ("Generate|LoRADeck", "Generate list", gen, {"pipeline": (2, 0)}, (800, 40)),
        4: ("PreviewImage", "Preview list", {}, {"images": (3, 0)}, (1200, 40)),
        5: ("LoadLoRA|LoRADeck", "Missing LoRA", {"lora_name": "gone/nowhere.safetensors", "strength_model": 1.0,
                                                  "strength_clip": 1.0, "adapter_name": ""}, {"pipeline": (1, 0)},
            (40, 700)),
    }
    _load(page, _examples().to_ui(graph, "info boxes"))
    page.wait_for_function("document.body.innerText.includes('was not found in your loras folders')",
                           timeout=30_000)
    page.keyboard.press("Escape")
    page.evaluate("() => { window.app.graph.getNodeById(5).mode = 4; }")  # bypassed: the rest runs
    before = set(_get_json(comfyui.base + "/history"))
    page.evaluate("window.app.queuePrompt(0, 1)")
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (ran := set(_get_json(comfyui.base + "/history")) - before) and time.monotonic() < deadline:
        time.sleep(1)
    assert ran and _wait_for_history(comfyui, ran.pop())["status"]["status_str"] == "success"
    page.wait_for_function("document.body.innerText.includes('modules matched')", timeout=30_000)
    page.wait_for_timeout(1500)
    page.evaluate("() => { window.app.graph.getNodeById(5).mode = 0; window.app.canvas.setDirty(true, true); }")
    page.wait_for_timeout(1000)
    boxes = page.evaluate(BOXES)
    _screenshot(page, "info-boxes-" + ("nodes-2.0" if vue else "classic"))
    page.close()
    assert {b["title"] for b in boxes} == {"LoRA list", "Missing LoRA"}, boxes
    report = next(b for b in boxes if b["title"] == "LoRA list")
    assert report["lines"] >= 8, boxes  # a long report: two LoRAs' match lines, base models, trigger words
    for box in boxes:
        assert abs(box["box"] - box["text"]) <= 10, boxes  # all of the text shows, with no blank space under it
        assert -1 <= box["below"] <= 48, boxes  # inside its node, which ends right below it (a footer at most)
    assert not problems, problems


def _examples():
    sys.path.insert(0, str(PACK_ROOT / "tools"))
    import make_example_workflows as examples

    return examples


def _gen() -> dict:
    return dict(_examples().GEN, steps=2, width=64, height=64)


OVERLAPS = """() => {
    const scale = window.app.canvas.ds.scale, vue = !!window.LiteGraph?.vueNodesMode;
    const rects = window.app.graph._nodes.map((node) => {
      const card = document.querySelector(`[data-node-id="${node.id}"]`);
      if (vue && !card) return [node.title, NaN, NaN, NaN, NaN];  // not drawn: reported below
      if (card) { const r = card.getBoundingClientRect(); return [node.title, r.left / scale, r.top / scale,
                                                                  r.right / scale, r.bottom / scale]; }
      const [x, y, w, h] = node.boundingRect;  // the title bar included
      return [node.title, x, y, x + w, y + h];
    });
    const overlaps = rects.filter((r) => Number.isNaN(r[1])).map((r) => `${r[0]}: no card in Nodes 2.0`);
    for (let i = 0; i < rects.length; i++) for (let j = i + 1; j < rects.length; j++) {
      const [a, b] = [rects[i], rects[j]];
      const w = Math.min(a[3], b[3]) - Math.max(a[1], b[1]), h = Math.min(a[4], b[4]) - Math.max(a[2], b[2]);
      if (w > 0 && h > 0) overlaps.push(`${a[0]} / ${b[0]}: ${Math.round(w)} x ${Math.round(h)} px`);
    }
    return [rects.length, overlaps];
}"""


@RENDERERS
def test_no_two_nodes_overlap_in_a_shipped_workflow(comfyui, browser, vue):
    page, problems = _open(browser, comfyui, vue)
    found = {}
    shipped = sorted((PACK_ROOT / "example_workflows").glob("*.json"))
    assert len(shipped) >= 10
    for path in shipped:
        workflow = json.loads(path.read_text())
        _load(page, workflow)
        _dismiss(page)
        count, overlaps = page.evaluate(OVERLAPS)
        assert count == len(workflow["nodes"]), path.name
        if overlaps:
            found[path.name] = overlaps
    page.close()
    assert not found, found


RAW_IDS = re.compile(r"\w+\|LoRADeck|Lo RA Deck|Lo RA\b")
MISSING_REASON = "was not found in your loras folders"
# The error report's sections (both frontends: generateErrorReport in src/utils/errorReportUtil.ts)
WORKFLOW_SECTION = re.compile(r"## Attached Workflow.*?(?=## Additional Context|$)", flags=re.S)
HISTORY_ERRORS = """async () => {
    const api = window.comfyAPI?.api?.api ?? window.app.api;
    const history = await api.getHistory(20);
    const items = Array.isArray(history) ? history : history?.History ?? [];
    return items.flatMap((item) => [item.execution_error,
        ...(item.status?.messages ?? []).filter((m) => m[0] === 'execution_error').map((m) => m[1])])
        .filter(Boolean).map((e) => e.node_type);
}"""


def _missing_lora_graph(lora_id: int = 2) -> dict:
    """Tiny SD -> Load LoRA (node `lora_id`) of a file that is nowhere -> Generate -> Preview: ComfyUI refuses it at
    queue time."""
    return {
        1: ("LoadPipeline|LoRADeck", "Tiny SD", {"model_name": "tiny-sd (built-in)", "dtype": "auto"}, {}, (40, 300)),
        lora_id: ("LoadLoRA|LoRADeck", "Missing LoRA", {"lora_name": "gone/nowhere.safetensors", "strength_model": 1.0,
                                                        "strength_clip": 1.0, "adapter_name": ""}, {"pipeline": (1, 0)},
                  (400, 40)),
        3: ("Generate|LoRADeck", "Generate missing", _gen(), {"pipeline": (lora_id, 0)}, (800, 40)),
        4: ("PreviewImage", "Preview missing", {}, {"images": (3, 0)}, (1200, 40)),
    }


def _texts_shown(page) -> str:
    """What the user can read: dialogs, toasts, the nodes' boxes and error badges, the error report (1.58.1: in the
    errors panel; 1.35.9: behind the dialog's Show Report), the tab title."""
    return "\n".join([page.title(), page.inner_text("body")])


def _report_sections(text: str) -> tuple[str, str]:
    """(the text without the report's Attached Workflow section, that section): the attached workflow is the graph
    as it is saved, whose nodes are stored by their IDs (node "type"), so it is the one part that keeps them."""
    attached = "\n".join(WORKFLOW_SECTION.findall(text))
    return WORKFLOW_SECTION.sub("", text), attached


@RENDERERS
def test_no_raw_node_id_in_what_the_user_reads_of_errors(comfyui, browser, vue):
    """A file that is nowhere, queued anyway (refused at queue time), and a run that fails: every message the
    user sees names our nodes by their display names or titles, never by their IDs: the refusal, the failed run's
    dialog or panel, its error report (node type, message, stack trace, the server log in it) and the failed job
    as the queue reports it again. Only the report's attached workflow keeps the IDs (the workflow as saved). The
    missing file's reason is said once, in the node's box, at queue time too."""
    page, problems = _open(browser, comfyui, vue)
    graph = _missing_lora_graph()
    _load(page, _examples().to_ui(graph, "errors"))
    page.wait_for_function("document.body.innerText.includes('gone/nowhere.safetensors: was not found')",
                           timeout=30_000)
    page.evaluate("window.app.queuePrompt(0, 1)")
    page.wait_for_timeout(4000)
    refused = _texts_shown(page)
    _screenshot(page, "queue-error-" + ("nodes-2.0" if vue else "classic"))
    _dismiss(page)
    failing = dict(graph)
    failing[2] = ("LoadLoRA|LoRADeck", "Wrong LoRA", {"lora_name": KOHYA, "strength_model": 1.0,
                                                      "strength_clip": 1.0, "adapter_name": ""}, {"pipeline": (1, 0)},
                  (400, 40))
    failing[1] = ("LoadPipeline|LoRADeck", "Markers only", {"model_name": MARKERS_ONLY, "dtype": "auto"}, {},
                  (40, 300))
    _load(page, _examples().to_ui(failing, "a failing run"))
    before = set(_get_json(comfyui.base + "/history"))
    page.evaluate("window.app.queuePrompt(0, 1)")
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (ran := set(_get_json(comfyui.base + "/history")) - before) and time.monotonic() < deadline:
        time.sleep(1)
    assert ran and _wait_for_history(comfyui, ran.pop())["status"]["status_str"] == "error"
    page.wait_for_timeout(3000)
    for button in ("View details", "Show Report"):  # 1.58.1: a toast, its report in a panel; 1.35.9: a dialog
        found = page.get_by_role("button", name=button)
        if found.count():
            found.first.click()
            page.wait_for_timeout(2000)
    page.wait_for_function("document.body.innerText.includes('## Attached Workflow')", timeout=30_000)
    failed, attached = _report_sections(_texts_shown(page))
    _screenshot(page, "run-error-" + ("nodes-2.0" if vue else "classic"))
    # what the queue's "Report error" on the failed job shows: 1.58.1 asks /api/jobs for completed, failed and
    # cancelled jobs, a status ComfyUI 0.8 refuses (HTTP 400, an empty list); it gets the server's own answer for
    # completed and failed jobs instead
    page.route("**/api/jobs?status=completed,failed,cancelled*", lambda route: route.fulfill(
        json=_get_json(route.request.url.replace("completed,failed,cancelled", "completed,failed"))))
    reported = page.evaluate(HISTORY_ERRORS)
    page.close()
    assert "gone/nowhere.safetensors" in refused and "Stable Diffusion 1.x checkpoint" in failed, (refused, failed)
    assert refused.count(MISSING_REASON) == 1, refused  # in the node's box, not in the refusal too
    # the report's sections: its node type, and ComfyUI's log of the refused prompt (execution.py names each node
    # by its class_type), with display names; the attached workflow as saved
    assert "Node Type:** Load Diffusers Pipeline" in failed and "* Load LoRA (LoRA Deck) 2:" in failed, failed
    assert '"type":"LoadPipeline|LoRADeck"' in attached, attached[:2000]
    assert not RAW_IDS.findall(refused) and not RAW_IDS.findall(failed), (RAW_IDS.findall(refused + failed))
    assert "Load Diffusers Pipeline" in reported and not RAW_IDS.findall(" ".join(reported)), reported
    # the frontend's own report of the refused prompt, and the help links it cannot reach offline
    ours = [p for p in problems if "PromptExecutionError" not in p and "ERR_NAME_NOT_RESOLVED" not in p]
    assert not ours, ours


# the text of the bottom panel's Logs terminal (xterm's DOM renderer: one div per row on screen)
TERMINAL = """() => [...document.querySelectorAll('.xterm-rows > div')].map((row) => row.textContent).join('\\n')
    .replaceAll('\\u00a0', ' ')"""
REFUSAL_LOGGED = """(id) => [...document.querySelectorAll('.xterm-rows > div')].some((row) =>
    new RegExp('^\\\\* .*(\\\\|LoRADeck|\\\\(LoRA Deck\\\\)) ' + id + ':')
        .test(row.textContent.replaceAll('\\u00a0', ' ')))"""


@RENDERERS
def test_no_raw_node_id_in_the_logs_terminal(comfyui, browser, vue):
    """The bottom panel's Logs terminal shows ComfyUI's log, which names a refused prompt's nodes by class_type
    (execution.py: "* LoadLoRA|LoRADeck 2:"): our nodes are named there by display name, both in the log the terminal
    loads when it opens (getRawLogs) and in the lines it is sent while open ("logs" messages). The rest of the log
    is as ComfyUI wrote it."""
    page, problems = _open(browser, comfyui, vue)
    _load(page, _examples().to_ui(_missing_lora_graph(2), "errors"))
    page.evaluate("window.app.queuePrompt(0, 1)")
    page.wait_for_timeout(3000)
    _dismiss(page)
    page.evaluate("window.app.extensionManager.command.execute('Workspace.ToggleBottomPanelTab.logs-terminal')")
    page.wait_for_function(REFUSAL_LOGGED, arg="2", timeout=30_000)
    loaded = page.evaluate(TERMINAL)
    sent_id = 7 if vue else 5  # the same refusal, its Load LoRA numbered as in no other test: only sent to this tab
    _load(page, _examples().to_ui(_missing_lora_graph(sent_id), "errors"))
    page.evaluate("window.app.queuePrompt(0, 1)")
    page.wait_for_function(REFUSAL_LOGGED, arg=str(sent_id), timeout=30_000)
    page.wait_for_timeout(1000)  # the rest of that refusal's lines
    sent = page.evaluate(TERMINAL)
    _screenshot(page, "logs-terminal-" + ("nodes-2.0" if vue else "classic"))
    page.close()
    assert "* Load LoRA (LoRA Deck) 2:" in loaded and "Failed to validate prompt for output 4:" in loaded, loaded
    assert f"* Load LoRA (LoRA Deck) {sent_id}:" in sent and "Output will be ignored" in sent, sent
    assert not RAW_IDS.findall(loaded) and not RAW_IDS.findall(sent), RAW_IDS.findall(loaded + sent)
    ours = [p for p in problems if "PromptExecutionError" not in p and "ERR_NAME_NOT_RESOLVED" not in p]
    assert not ours, ours


def _search(page, query: str, tries: int = 3) -> list[str]:
    """The names the node search box lists for `query` (opened by a double-click on an empty canvas); tried again
    when the box did not open or list anything in time (a busy machine)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(tries):
        page.evaluate("() => { window.app.graph.clear(); window.app.canvas.setDirty(true, true); }")
        page.wait_for_timeout(300)
        page.mouse.dblclick(700, 500)
        page.wait_for_timeout(1000)
        page.keyboard.type(query, delay=30)
        try:
            page.wait_for_function("(q) => [...document.querySelectorAll('[role=option]')].some((o) => "
                                   "o.innerText.startsWith(q))", arg=query, timeout=15_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        page.wait_for_timeout(1000)  # the list settles
        names = [text.split("\n")[0].strip() for text in page.locator("[role=option]").all_inner_texts()]
        page.keyboard.press("Escape")
        return [name for name in names if name]
    return []


@RENDERERS
def test_node_search_lists_our_nodes_with_distinct_names(comfyui, browser, vue):
    """The frontend's node search (double-click on the canvas): ours and ComfyUI's own nodes of the same kind are
    told apart by their names."""
    page, problems = _open(browser, comfyui, vue)
    listed = {query: _search(page, query) for query in ("Load LoRA", "Save Image", "Generate")}
    _screenshot(page, "search-" + ("nodes-2.0" if vue else "classic"))
    page.close()
    assert {"Load LoRA", "Load LoRA (LoRA Deck)"} <= set(listed["Load LoRA"]), listed
    assert {"Save Image", "Save Image (LoRA Deck)"} <= set(listed["Save Image"]), listed
    assert "Generate (LoRA Deck)" in listed["Generate"], listed
    for names in listed.values():
        assert len(names) == len(set(names)), listed
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


@pytest.mark.parametrize("name", [*SPLIT_FILES["diffusion_models"], *SPLIT_FILES["unet"]])
def test_split_model_files_are_listed_and_load_inside_comfyui(comfyui, name):
    """ComfyUI's split layout: a denoiser in diffusion_models/ or unet/ (scaled fp8, GGUF), a scaled-fp8 T5 in
    text_encoders/ (picked), CLIP-L in clip/ and the VAE in vae/ (found by shape): listed by Load Diffusion Model,
    loaded with its weights kept quantized, a LoRA added on top, and run."""
    info = _get_json(comfyui.base + "/object_info/LoadDiffusionModel%7CLoRADeck")["LoadDiffusionModel|LoRADeck"]
    assert name in info["input"]["required"]["unet_name"][0]
    encoders = info["input"]["optional"]["text_encoder_2"][0]
    assert {"auto", "t5_tiny_fp8_e4m3fn_scaled.safetensors", "clip_l.safetensors"} <= set(encoders)
    prompt = {
        "1": {"class_type": "LoadDiffusionModel|LoRADeck", "inputs": {  # the fp8 T5 picked: auto prefers full precision
            "unet_name": name, "dtype": "float32", "text_encoder_2": "t5_tiny_fp8_e4m3fn_scaled.safetensors"}},
        "2": {"class_type": "LoadLoRA|LoRADeck", "inputs": {"pipeline": ["1", 0], "lora_name": FLUX_LORA.name,
                                                            "strength_model": 0.8, "strength_clip": 1.0}},
        "3": {"class_type": "Generate|LoRADeck", "inputs": {
            "pipeline": ["2", 0], "prompt": "a photo of a cat", "negative_prompt": "", "seed": 3, "steps": 2,
            "cfg": 1.0, "width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    entry = _run_prompt(comfyui, prompt)
    if entry["status"]["status_str"] != "success":
        comfyui.fail(f"split-file workflow failed: {json.dumps(entry['status'], indent=1)}")
    log_text = comfyui.log_path.read_text(errors="replace")
    kind = "GGUF Q" if name.endswith(".gguf") else "fp8 e4m3fn scaled"
    assert f"'{name}' (transformer): 40 Linear layers kept quantized" in log_text and kind in log_text
    assert "'t5_tiny_fp8_e4m3fn_scaled.safetensors' (text_encoder_2): 12 Linear layers kept quantized" in log_text


# unet_name -> (its family, the parts picked by name (the others: auto), what the log says stays quantized)
LONG_TAIL_CASES = {
    "lumina2_tiny-Q8_0.gguf": ("lumina2", {"vae": "lumina2/ae.safetensors"},
                               "16 Linear layers kept quantized (16 in GGUF Q8_0)"),
    # lcpp.patch keeps feed_forward.w2 of a Q4_0 file in Q4_1, as ComfyUI-GGUF's Q4_0 files do
    "lumina2_tiny-Q4_0.gguf": ("lumina2", {"vae": "lumina2/ae.safetensors",
                                           "text_encoder_1": "gemma_2_2b_fp16.safetensors"},
                               "16 Linear layers kept quantized (14 in GGUF Q4_0, 2 in GGUF Q4_1)"),
    "auraflow_tiny_fp8_e4m3fn_scaled.safetensors": ("auraflow", {},
                                                    "32 Linear layers kept quantized (32 in fp8 e4m3fn scaled)"),
    "auraflow_tiny-Q4_0.gguf": ("auraflow", {"text_encoder_1": "pile_t5xl_bf16.safetensors",
                                             "vae": "sdxl_vae.safetensors"},
                                "32 Linear layers kept quantized (32 in GGUF Q4_0)"),
}
INPUTS_OF_FOLDER = {"diffusion_models": ("unet_name",), "unet": ("unet_name",), "vae": ("vae",),
                    "text_encoders": ("text_encoder_1", "text_encoder_2", "text_encoder_3")}


@pytest.mark.parametrize("name", LONG_TAIL_CASES)
def test_long_tail_split_files_are_listed_and_load_inside_comfyui(comfyui, name):
    """The long tail's split layouts inside ComfyUI: Lumina 2 as GGUF (in diffusion_models/ or unet/) with its Gemma 2
    in text_encoders/ and its FLUX.1-layout VAE picked from vae/lumina2/; AuraFlow as ComfyUI's scaled fp8 or GGUF
    with its Pile-T5 and the SDXL VAE (found by keys, shapes and name, or picked). Every file is listed by Load
    Diffusion Model; each model loads with its denoiser kept quantized, takes a LoRA on top, and runs."""
    family, picked, kept = LONG_TAIL_CASES[name]
    info = _get_json(comfyui.base + "/object_info/LoadDiffusionModel%7CLoRADeck")["LoadDiffusionModel|LoRADeck"]
    inputs = {**info["input"]["required"], **info["input"]["optional"]}
    for where in (*LONG_TAIL_FILES.values(), *LONG_TAIL_VAES.values()):
        folder, _, listed_as = where.partition("/")
        for key in INPUTS_OF_FOLDER[folder]:
            assert listed_as in inputs[key][0], (where, key, inputs[key][0])
    prompt = {
        "1": {"class_type": "LoadDiffusionModel|LoRADeck", "inputs": {"unet_name": name, "dtype": "float32",
                                                                      **picked}},
        "2": {"class_type": "LoadLoRA|LoRADeck", "inputs": {
            "pipeline": ["1", 0], "lora_name": f"{family}-tiny-lora.safetensors", "strength_model": 0.8,
            "strength_clip": 1.0}},
        "3": {"class_type": "Generate|LoRADeck", "inputs": {
            "pipeline": ["2", 0], "prompt": "a photo of a cat", "negative_prompt": "", "seed": 3, "steps": 2,
            "cfg": 1.0, "width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    entry = _run_prompt(comfyui, prompt)
    if entry["status"]["status_str"] != "success":
        comfyui.fail(f"{family} split-file workflow failed: {json.dumps(entry['status'], indent=1)}")
    assert len([i for out in entry["outputs"].values() for i in out.get("images", [])]) == 1, entry["outputs"]
    matched = "\n".join(entry["outputs"].get("2", {}).get("loradeck_info", []))  # Load LoRA's match report
    assert re.search(r": (\d+)/\1 modules matched \(transformer \1/\1\)", matched), matched
    assert "WARNING" not in matched, matched
    log_text = comfyui.log_path.read_text(errors="replace")
    assert f"'{name}' (transformer): {kept}" in log_text, _log_tail(comfyui.log_path)
    models = comfyui.output_dir.parent / "single-file" / "models"
    for component, where in (("text_encoder", LONG_TAIL_ENCODERS[family]), ("vae", LONG_TAIL_VAES[family])):
        assert f"single file: {component} from {models / where}" in log_text, _log_tail(comfyui.log_path)


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


def test_video_frames_reach_comfyuis_own_video_nodes(comfyui):
    """The video example through ComfyUI's queue: Load LoRA Pair on the tiny Wan 2.2 models, Generate's frames (one
    IMAGE batch) into ComfyUI's own Save Animated WEBP, and Create Video -> Save Video (an MP4: ComfyUI requires PyAV,
    av in its requirements.txt). Each file holds the 17 frames; the panel's route shows the pair as one adapter."""
    from PIL import Image

    prompt = json.loads(VIDEO_API.read_text())
    start = PACK_ROOT / "example_workflows" / "input" / prompt["10"]["inputs"]["image"]  # the image-to-video start
    inputs = comfyui.output_dir.parent / "input"  # ComfyUI's input/ under --base-directory, where users copy it
    inputs.mkdir(exist_ok=True)
    shutil.copyfile(start, inputs / start.name)
    queued = _post_json(comfyui.base + "/prompt", {"prompt": prompt, "client_id": "loradeck-video", "extra_data": {
        "extra_pnginfo": {"workflow": json.loads(VIDEO_UI.read_text())}}})
    assert not queued.get("node_errors"), f"prompt rejected: {queued}"
    entry = _wait_for_history(comfyui, queued["prompt_id"])
    if entry["status"]["status_str"] != "success":
        comfyui.fail(f"video workflow failed: {json.dumps(entry['status'], indent=1)}")
    kinds = {node_id: prompt[node_id]["class_type"] for node_id in entry["outputs"]}
    webps = [out for node_id, out in entry["outputs"].items() if kinds[node_id] == "SaveAnimatedWEBP"]
    videos = [out for node_id, out in entry["outputs"].items() if kinds[node_id] == "SaveVideo"]
    assert len(webps) == 2 and len(videos) == 1, entry["outputs"]
    sizes = []
    for out in webps:
        (image,) = out["images"]
        assert image["filename"].endswith(".webp") and list(out.get("animated", [])) == [True], out
        webp = Image.open(comfyui.output_dir / image["subfolder"] / image["filename"])
        sizes.append((webp.n_frames, webp.size))
    assert sorted(sizes) == [(17, (64, 64)), (17, (128, 128))]
    (mp4,) = videos[0]["images"]
    path = comfyui.output_dir / mp4["subfolder"] / mp4["filename"]
    assert path.suffix == ".mp4" and path.stat().st_size > 0
    # the MP4's frames, decoded by PyAV: ComfyUI's own interpreter has it (av is in its requirements.txt), this one
    # may not (LoRA Deck's tests need no PyAV)
    count = ("import av, sys\nwith av.open(sys.argv[1]) as c:\n"
             "    print(len([f.to_ndarray(format='rgb24').shape for f in c.decode(video=0)]))")
    python = os.environ.get("COMFYUI_PYTHON") or sys.executable
    decoded = subprocess.run([python, "-c", count, str(path)], capture_output=True, text=True, timeout=120)
    assert decoded.returncode == 0, decoded.stderr[-2000:]
    assert int(decoded.stdout.split()[-1]) == 17
    data = _get_json(comfyui.base + "/api/loradeck/snapshot")
    pairs = [a for s in data["recent"] for a in s["adapters"] if a["name"] == "demo pair"]
    assert pairs and pairs[0]["part_files"][0][0] == "transformer_2", pairs[:1]
    labels = {tuple(pair) for s in data["recent"] for pair in s.get("labels", [])}
    assert {("transformer", "high noise"), ("transformer_2", "low noise")} <= labels


def test_save_image_node_writes_a1111_parameters(comfyui):
    import a1111_parser
    from PIL import Image
    from test_save_image import KOHYA, STYLE, _a1111, _workflow

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
        assert loras == {STYLE: _a1111(STYLE), KOHYA: _a1111(KOHYA)}
