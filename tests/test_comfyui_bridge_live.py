"""Live: LoRA Loader (LoRA Deck) on ComfyUI's own MODEL and CLIP, in a real ComfyUI (skipped without COMFYUI_ROOT).

A real-size SD 1.5-architecture checkpoint with seeded random weights (real_checkpoint.py: built from the pack's
shipped config, cached between runs under pytest's cache or LORADECK_TEST_CACHE) is what ComfyUI detects as SD 1.5.
Then, with ComfyUI's Python (COMFYUI_PYTHON):

- comfyui_bridge_check.py writes LoRA files in seven layouts for that checkpoint's real modules and compares, inside
  ComfyUI, the weights ComfyUI patches for ComfyUI's LoraLoader and for this pack's LoRA Loader: equal bit for bit
  wherever ComfyUI loads a file fully; for PEFT/diffusers and DoRA files, equal to peft's own merge;
- a ComfyUI server runs Load Checkpoint -> LoRA Loader (LoRA Deck) -> KSampler -> VAE Decode -> Save Image (LoRA
  Deck) (the native example workflow), checks the PNG's Lora hashes are A1111's, and that the image equals the one
  ComfyUI's LoraLoader gives with the same file.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_comfyui_live import (
    COMFYUI_ROOT,
    FRONTEND,
    PACK_ROOT,
    _free_port,
    _get_json,
    _load,
    _open,
    _post_json,
    _screenshot,
    _Server,
    _stop,
    _wait_for_history,
    _wait_until_up,
    browser,  # noqa: F401 - the module's chromium (a fixture)
)

pytestmark = pytest.mark.skipif(not COMFYUI_ROOT, reason="set COMFYUI_ROOT to a ComfyUI checkout to run this test")
NATIVE = PACK_ROOT / "example_workflows" / "api" / "loradeck-native.api.json"
NATIVE_UI = PACK_ROOT / "example_workflows" / "loradeck-native.json"
CHECKPOINT = "random-sd15.safetensors"
FLUX = "small-flux.safetensors"  # FLUX.1's widths, one double and one single block (real_checkpoint.build_flux)
CHECK_TIMEOUT = 1800.0
BITWISE = ("kohya-lora-locon", "lycoris-loha", "lycoris-lokr", "lycoris-full")
PEFT_REFERENCE = ("peft-lora", "peft-dora", "kohya-dora")


def _python() -> str:
    return os.environ.get("COMFYUI_PYTHON") or sys.executable


def _env() -> dict:
    """The environment for ComfyUI's Python: this very pack importable as ``loradeck`` (first on the path)."""
    import loradeck

    package = os.path.dirname(os.path.abspath(loradeck.__file__))
    paths = [os.path.dirname(package)] if os.path.basename(package) == "loradeck" else []
    paths.append(str(PACK_ROOT / "tests"))
    old = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths + ([old] if old else [])), PYTHONUNBUFFERED="1",
                HF_HUB_OFFLINE="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))


@pytest.fixture(scope="module")
def models(request, tmp_path_factory) -> Path:
    """A ComfyUI base directory whose models/checkpoints holds the random real-size SD 1.5 checkpoint."""
    import real_checkpoint

    cache = os.environ.get("LORADECK_TEST_CACHE") or str(request.config.cache.mkdir("loradeck-real-sd15"))
    built = real_checkpoint.cached(cache)
    flux = real_checkpoint.cached(cache, flux=True)
    base = tmp_path_factory.mktemp("comfyui-bridge")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "loradeck").symlink_to(PACK_ROOT, target_is_directory=True)
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "loras").mkdir(parents=True)
    (base / "models" / "checkpoints" / CHECKPOINT).symlink_to(built)
    (base / "models" / "diffusion_models").mkdir()
    (base / "models" / "diffusion_models" / FLUX).symlink_to(flux)
    return base


@pytest.fixture(scope="module")
def report(models) -> dict:
    """comfyui_bridge_check.py's report (it also writes the LoRA files into models/loras)."""
    out = models / "bridge-check.json"
    cmd = [_python(), str(PACK_ROOT / "tests" / "comfyui_bridge_check.py"), "--comfyui", str(Path(COMFYUI_ROOT)),
           "--checkpoint", str(models / "models" / "checkpoints" / CHECKPOINT), "--loras",
           str(models / "models" / "loras"), "--out", str(out), "--flux",
           str(models / "models" / "diffusion_models" / FLUX)]
    done = subprocess.run(cmd, cwd=COMFYUI_ROOT, env=_env(), capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    if done.returncode != 0:
        pytest.fail(f"comfyui_bridge_check.py failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                    f"{done.stderr[-6000:]}")
    data = json.loads(out.read_text())
    output = os.environ.get("LORADECK_TEST_OUTPUT")
    if output:
        os.makedirs(output, exist_ok=True)
        Path(output, "comfyui-bridge-check.json").write_text(json.dumps(data, indent=1))
    return data


@pytest.fixture(scope="module")
def server(models, report):
    log_path = models / "comfyui.log"
    port = _free_port()
    cmd = [_python(), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory",
           str(models), "--disable-all-custom-nodes", "--whitelist-custom-nodes", "loradeck", "--database-url",
           "sqlite:///:memory:"]
    if FRONTEND:
        cmd += ["--front-end-root", FRONTEND]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=COMFYUI_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=_env())
        running = _Server(proc, f"http://127.0.0.1:{port}", log_path, models / "output")
        try:
            _wait_until_up(running)
            yield running
        finally:
            _stop(proc)


@pytest.mark.parametrize("case", BITWISE)
def test_weights_equal_comfyuis_loraloader_bit_for_bit(report, case):
    """Files ComfyUI's LoraLoader loads fully: every weight ComfyUI patches is the same tensor, bit for bit."""
    found = report["cases"][case]["vs_loraloader"]
    assert found["keys"] >= 3 and found["equal"] == found["keys"] and found["max_abs"] == 0, found
    assert found["only_first"] == found["only_second"] == [], found


@pytest.mark.parametrize("case", PEFT_REFERENCE)
def test_peft_and_dora_files_equal_peft_merge(report, case):
    """PEFT/diffusers and DoRA files, where ComfyUI falls short: the patched weights are peft's own merge of the
    same adapter on the same base weights, on every module the file names: to float32 rounding where ComfyUI keeps
    float32 weights (the UNet on CPU), to float16 rounding where it keeps float16 (the text encoder)."""
    ours, theirs = report["cases"][case]["vs_peft"], report["cases"][case]["loraloader_vs_peft"]
    assert ours["only_first"] == ours["only_second"] == [] and ours["keys"] >= 13, ours
    assert ours["f32_max_rel"] < 1e-6 and ours["f16_max_steps"] <= 1, ours
    # what ComfyUI's own loader does with the same file (the shortfalls this node exists for)
    if case == "kohya-dora":  # DoRA normalised by the base weight's norm (ComfyUI #12938)
        assert theirs["f32_max_rel"] > 1e-3, theirs
    else:  # diffusers/PEFT attention keys are not loaded (ComfyUI #12452, #9753), nor alpha from the config
        assert len(theirs["only_second"]) >= 5 and theirs["f32_max_rel"] > 1e-2, theirs


@pytest.mark.parametrize("case", ["flux-kohya", "flux-diffusers"])
def test_flux_fused_layers_equal_comfyuis_loraloader(report, case):
    """On Flux's fused qkv / linear1 (ComfyUI keeps FLUX.1's layout): a kohya file, which ComfyUI patches on the
    whole fused key and LoRA Deck on its (key, offset) slices, gives the same weights to rounding (here even the
    same bits); a diffusers file, on slices and the reordered final modulation in both, bit for bit."""
    found = report["flux"][f"{case}.safetensors"]
    assert found["keys"] == 4 and found["only_first"] == found["only_second"] == [], found
    assert found["max_rel"] < 1e-6, found
    if case == "flux-diffusers":
        assert found["equal"] == found["keys"], found


def test_flux_block_weights_keep_the_slices_offsets(report):
    """A block weight on transformer_blocks.0 reaches ComfyUI as the three (key, (0, offset, 3072)) slices of that
    block's qkv at strength 0.5, and the weights equal LoraLoader's at strength 0.5 there (1 elsewhere)."""
    keys = report["flux"]["block_patch_keys"]
    qkv = "diffusion_model.double_blocks.0.img_attn.qkv.weight"
    assert {k for k in keys if k.startswith(qkv)} == {f"{qkv} 0.5 [0, {o}, 3072]" for o in (0, 3072, 6144)}
    assert sum(k.startswith("diffusion_model.single_blocks.0.linear1.weight 1.0 [0, ") for k in keys) == 4
    found = report["flux"]["blocks_vs_loraloader"]
    assert found["keys"] == 4 and found["max_rel"] < 1e-6, found


def _prompt(rows: list[dict], weights: str = "", seed: int = 42) -> dict:
    prompt = json.loads(NATIVE.read_text())
    prompt["1"]["inputs"]["ckpt_name"] = CHECKPOINT
    prompt["2"]["inputs"]["loras"] = json.dumps(rows)
    prompt["2"]["inputs"]["weights"] = weights
    prompt["5"]["inputs"].update(width=64, height=64)
    prompt["6"]["inputs"].update(steps=2, seed=seed)
    return prompt


def _row(name: str, model: float = 1.0, clip: float = 1.0) -> dict:
    return {"enabled": True, "lora_name": f"{name}.safetensors", "strength_model": model, "strength_clip": clip}


def _with_loraloader(prompt: dict, file: str, model: float, clip: float) -> dict:
    """The same graph again (ids +100) with ComfyUI's LoraLoader where the LoRA Loader (LoRA Deck) is."""
    out = copy.deepcopy(prompt)
    for key, node in prompt.items():
        node = copy.deepcopy(node)
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2:
                node["inputs"][name] = [str(int(value[0]) + 100), value[1]]
        out[str(int(key) + 100)] = node
    out["102"] = {"class_type": "LoraLoader", "inputs": {"model": ["101", 0], "clip": ["101", 1], "lora_name": file,
                                                         "strength_model": model, "strength_clip": clip}}
    out["108"]["inputs"]["filename_prefix"] = "comfy-loraloader"
    return out


def _run(server, prompt: dict) -> dict:
    queued = _post_json(server.base + "/prompt", {"prompt": prompt, "client_id": "loradeck-bridge"})
    assert not queued.get("node_errors"), queued
    entry = _wait_for_history(server, queued["prompt_id"], timeout=900)
    if entry["status"]["status_str"] != "success":
        server.fail(f"workflow failed: {json.dumps(entry['status'], indent=1)[-4000:]}")
    return entry


def _saved(server, entry: dict, node: str) -> list[Path]:
    images = entry["outputs"].get(node, {}).get("images", [])
    return [server.output_dir / i["subfolder"] / i["filename"] for i in images]


def test_native_workflow_saves_a1111_hashes_and_matches_loraloader(server, models):
    """Load Checkpoint -> LoRA Loader (LoRA Deck) -> KSampler -> VAE Decode -> Save Image (LoRA Deck) runs in ComfyUI;
    the PNG's parameters name each LoRA by the hash A1111 and Forge relink by; with one kohya file the picture is
    the one ComfyUI's LoraLoader makes (the same weights, bit for bit)."""
    import a1111_parser
    from PIL import Image

    from helpers import a1111_shorthash

    loras = models / "models" / "loras"
    prompt = _with_loraloader(_prompt([_row("kohya-lora-locon", 0.8, 0.6)]), "kohya-lora-locon.safetensors", 0.8, 0.6)
    entry = _run(server, prompt)
    (ours,), (theirs,) = _saved(server, entry, "8"), _saved(server, entry, "108")
    assert np.array_equal(np.asarray(Image.open(ours)), np.asarray(Image.open(theirs)))
    meta = a1111_parser.parse(Image.open(ours).text["parameters"])
    assert [(r["name"], r["hash"], r["weight"]) for r in meta["resources"] if r["type"] == "lora"] == [
        ("kohya-lora-locon", a1111_shorthash(str(loras / "kohya-lora-locon.safetensors")), 0.8)]
    assert "<lora:kohya-lora-locon:te=0.6:unet=0.8>" in meta["prompt"]
    assert (meta["steps"], meta["seed"], meta["Model"], meta["width"]) == (2, 42, "random-sd15", 64)
    assert "Lora hashes" not in Image.open(theirs).text["parameters"]  # ComfyUI's LoraLoader records no stack

    rows = [_row("kohya-lora-locon", 0.8, 0.6), _row("peft-dora"), _row("lycoris-loha", 0.5, 0.5)]
    entry = _run(server, _prompt(rows, "lycoris-loha: lbw=OUT"))
    (path,) = _saved(server, entry, "8")
    found = {r["name"]: r["hash"] for r in a1111_parser.parse(Image.open(path).text["parameters"])["resources"]
             if r["type"] == "lora"}
    assert found == {name: a1111_shorthash(str(loras / f"{name}.safetensors"))
                     for name in ("kohya-lora-locon", "peft-dora", "lycoris-loha")}
    # another seed: the LoRA Loader's output comes from ComfyUI's cache; Save Image still finds its stack
    again = _run(server, _prompt(rows, "lycoris-loha: lbw=OUT", seed=43))
    (path,) = _saved(server, again, "8")
    assert "Seed: 43" in Image.open(path).text["parameters"] and "Lora hashes" in Image.open(path).text["parameters"]
    output = os.environ.get("LORADECK_TEST_OUTPUT")
    if output:
        os.makedirs(output, exist_ok=True)
        Image.open(ours).save(os.path.join(output, "comfyui-native-bridge.png"))


def _ui_workflow(rows: list[dict]) -> dict:
    """The native example as the frontend opens it, on this run's checkpoint and files, 64x64 in 2 steps."""
    workflow = json.loads(NATIVE_UI.read_text())
    nodes = {n["id"]: n for n in workflow["nodes"]}
    nodes[1]["widgets_values"][0] = CHECKPOINT
    nodes[2]["widgets_values"][:2] = [json.dumps(rows), ""]
    nodes[5]["widgets_values"][:2] = [64, 64]
    nodes[6]["widgets_values"][2] = 2
    return workflow


@pytest.mark.parametrize("vue", [False, True], ids=["classic", "nodes-2.0"])
def test_the_node_in_the_real_frontend(server, browser, vue):  # noqa: F811 - browser is the imported fixture
    """The native example opens in the frontend (both renderers): the LoRA Loader's rows render as LoRA List's, no
    error and no workflow-schema complaint; queued from the browser it runs, and the row records its file's hash."""
    import time

    page, problems = _open(browser, server, vue)
    _load(page, _ui_workflow([_row("kohya-lora-locon", 0.8, 0.6)]))
    rows = page.locator("[data-testid=loradeck-rows]").first
    rows.wait_for(timeout=30_000)
    assert rows.locator(".loradeck-row:not(.loradeck-row-head)").count() == 1
    assert "zod" not in page.inner_text("body").lower()
    if not vue:
        before = set(_get_json(server.base + "/history"))
        page.evaluate("window.app.queuePrompt(0, 1)")
        deadline = time.monotonic() + 900
        while not (ran := set(_get_json(server.base + "/history")) - before) and time.monotonic() < deadline:
            time.sleep(1)
        assert ran, "the graph queued from the browser never finished"
        status = _wait_for_history(server, ran.pop())["status"]
        assert status["status_str"] == "success", status
        page.wait_for_timeout(2000)
        saved = page.evaluate("JSON.parse(JSON.stringify(window.app.graph.serialize()))")
        (node,) = [n for n in saved["nodes"] if n["type"] == "LoRALoader|LoRADeck"]
        assert len(json.loads(node["widgets_values"][0])[0]["sha256"]) == 64
    _screenshot(page, "lora-loader-" + ("nodes-2.0" if vue else "classic"))
    page.close()
    assert not problems, problems
