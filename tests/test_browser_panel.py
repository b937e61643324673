"""The panel and node info in a real browser (Debian chromium driven by Playwright).

A small aiohttp server serves web/ with stand-ins for the frontend's app/api modules and the pack's REAL
routes and live event, backed by real core state on the tiny model. LoRA metadata carries an XSS payload
that must show as text. Skipped when playwright or chromium is missing, unless LORADECK_REQUIRE_BROWSER=1
(CI installs both and sets it); the screenshot goes to $LORADECK_TEST_OUTPUT (default tests/_output).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from helpers import make_pipe

CHROMIUM = os.environ.get("LORADECK_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("LORADECK_REQUIRE_BROWSER") == "1"  # CI sets it: a missing browser is then an error


def _require(ok: bool, reason: str) -> None:
    if not ok:
        if REQUIRED:
            pytest.fail(f"{reason} (LORADECK_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(reason, allow_module_level=True)


try:
    from playwright import sync_api
except ImportError:
    sync_api = None
_require(sync_api is not None, "playwright is not installed (pip install playwright)")
_require(os.path.exists(CHROMIUM), f"no chromium at {CHROMIUM} (apt-get install chromium)")
pytest.importorskip("aiohttp")

from loradeck.core import Deck  # noqa: E402
from loradeck.core.api import PipelineHandle  # noqa: E402
from loradeck.nodes import NODE_CLASS_MAPPINGS  # noqa: E402
from panel_server import PanelTestServer, output_dir  # noqa: E402

XSS = "<img src=x onerror=window.__xss=1>"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
LONG = "an-adapter-with-a-very-long-name-that-must-end-in-an-ellipsis-" * 4


@pytest.fixture(scope="module")
def xss_lora(lora_dir):
    """The kohya fixture re-saved with hostile metadata (title and trigger words)."""
    path = lora_dir / "loras" / "hostile.safetensors"
    save_file(load_file(str(lora_dir / "loras" / "k.safetensors")), str(path), metadata={
        "ss_base_model_version": "sd_v1", "modelspec.title": XSS, "modelspec.trigger_phrase": f"{XSS}, hero"})
    return str(path)


@pytest.fixture(scope="module")
def decks(files, xss_lora):
    main = Deck(make_pipe(), label="tiny-sd (built-in) [auto]")
    main.add(files["a"], name="style", model=0.8, clip=0.5).add(xss_lora, name=XSS, model=0.6, clip=1.0)
    main.fuse(names=[XSS])
    crowded = Deck(make_pipe(), label="crowded " + LONG)
    for i in range(12):
        crowded.add(files["b"], name=f"{LONG}{i}", model=i / 10, clip=1.0)
    return main, crowded


@pytest.fixture(scope="module")
def server(decks):
    """Started after the decks are built, so only later changes arrive as live events."""
    running = PanelTestServer(owners=[], runtime=decks[0].owner.runtime).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def page(server):
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 760, "height": 1300})
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.errors = errors
        tab.goto(server.url)
        tab.wait_for_function("window.__ready === true || window.__harnessError !== undefined", timeout=30_000)
        assert tab.evaluate("window.__harnessError") is None, tab.evaluate("window.__harnessError")
        yield tab
        browser.close()


PANEL = "[data-testid=loradeck-panel]"


def _refresh(page):
    page.click(f"{PANEL} .loradeck-refresh")


def test_empty_state_on_open(page):
    page.wait_for_selector(f"{PANEL} .loradeck-empty", timeout=10_000)
    assert "No pipeline loaded yet" in page.inner_text(PANEL)


def test_adapters_weights_fused_flags_and_hostile_metadata_as_text(page, server, decks):
    server.owners[:] = [d.owner for d in decks]
    _refresh(page)
    page.wait_for_selector(f"{PANEL} .loradeck-pipeline >> nth=1", timeout=10_000)
    style = page.locator(f"{PANEL} li.loradeck-adapter[data-adapter=style]")
    assert "unet 0.8 · text_encoder 0.5" in style.inner_text() and "active" in style.inner_text()
    hostile = page.locator(f"{PANEL} li.loradeck-adapter").filter(has_text="hero")
    text = hostile.inner_text()
    assert XSS in text and "fused" in text and "SD 1.x" in text and "hostile.safetensors" in text
    assert page.locator(f"{PANEL} img").count() == 0 and page.evaluate("window.__xss") is None


def test_many_adapters_and_long_names_stay_in_the_panel(page):
    crowded = page.locator(f"{PANEL} section.loradeck-pipeline").filter(has_text="crowded")
    assert crowded.locator("li.loradeck-adapter").count() == 12
    name = crowded.locator(".loradeck-name").first
    assert name.get_attribute("title") == f"{LONG}0"
    panel = page.locator(PANEL).bounding_box()
    box = name.bounding_box()
    assert box["x"] + box["width"] <= panel["x"] + panel["width"]
    assert name.evaluate("e => e.scrollWidth > e.clientWidth")  # cut with an ellipsis, full name in the tooltip


def test_live_event_updates_the_panel(page, decks):
    main, _ = decks
    main.set_weights("style", model=0.25)  # reconcile -> core event -> send_sync -> websocket -> panel
    page.wait_for_function(
        "() => document.querySelector('li.loradeck-adapter[data-adapter=style]')?.textContent.includes('unet 0.25')",
        timeout=10_000)
    assert "Recent activity (1)" in page.inner_text(PANEL)


def test_load_lora_node_shows_its_info_and_records_hashes(page, decks, xss_lora, lora_dir, use_models):
    use_models(str(lora_dir))
    handle = PipelineHandle(decks[0].owner)
    ui = NODE_CLASS_MAPPINGS["LoadLoRA|LoRADeck"]().load(handle, "hostile.safetensors", 1.0, 1.0)["ui"]
    node = page.evaluate("""(ui) => { const node = window.__nodes['LoadLoRA|LoRADeck']; node.onExecuted(ui);
        return {text: node.box.innerText, models: node.properties.models, calls: node.originalCalls,
                serialize: node.widgets[0].serialize, images: node.box.querySelectorAll('img').length}; }""", ui)
    assert "modules matched" in node["text"] and XSS in node["text"] and node["images"] == 0
    sha = ui["loradeck_models"][0]["sha256"]
    assert node["models"] == [{"name": "hostile.safetensors", "directory": "loras", "hash": sha,
                               "hash_type": "SHA256"}]
    assert node["calls"] == 1 and node["serialize"] is False
    assert page.evaluate("window.__xss") is None
    page.screenshot(path=str(output_dir() / "browser-panel.png"), full_page=True)
    assert not page.errors, page.errors


def test_a_failing_route_shows_an_error(page):
    page.route("**/api/loradeck/snapshot", lambda route: route.fulfill(status=500, body="boom"))
    _refresh(page)
    page.wait_for_selector(f"{PANEL} [role=alert]", timeout=10_000)
    assert "HTTP 500" in page.inner_text(f"{PANEL} [role=alert]")
    page.unroute("**/api/loradeck/snapshot")
    _refresh(page)
    page.wait_for_selector(f"{PANEL} [role=alert]", state="detached", timeout=10_000)


def test_every_web_module_loads_on_its_own(page, server):
    """The frontend imports every .js under web/: helpers must load without side effects or errors."""
    listed = json.loads(page.evaluate("fetch('/extensions').then(r => r.text())"))
    assert {u.rsplit("/", 1)[-1] for u in listed} >= {"panel.js", "node_info.js", "api_client.js"}
    extensions = page.evaluate("window.__app.extensions.map(e => e.name)")
    assert sorted(extensions) == ["loradeck.NodeInfo", "loradeck.Panel", "loradeck.SharedNames"]


def test_shared_workflow_names_are_switched_to_local_files(page, server, lora_dir, files, use_models):
    """A workflow from another machine: Windows path to a file in another folder, and a renamed file with a hash."""
    server.names_runtime = use_models(str(lora_dir))  # the route runs on the server's thread
    sha = hashlib.sha256(Path(files["b"]).read_bytes()).hexdigest()
    values = page.evaluate("""async ([sha, options, windows]) => {
        const ext = window.__app.extensions.find((e) => e.name === "loradeck.SharedNames");
        const combo = (name, value) => ({ name, value, type: "combo", options: { values: options } });
        const node = { type: "StackLoRA|LoRADeck", widgets: [combo("lora_name_1", windows),
            combo("lora_name_2", "friend/renamed.safetensors"), combo("lora_name_3", "None"),
            combo("lora_name_4", "nowhere.safetensors")],
            properties: { models: [{ name: "friend/renamed.safetensors", directory: "loras", hash: sha }] } };
        await ext.loadedGraphNode(node);
        for (let i = 0; i < 100 && node.widgets[1].value.startsWith("friend"); i++) {
            await new Promise((r) => setTimeout(r, 100));
        }
        return node.widgets.map((w) => w.value);
    }""", [sha, ["None", "a.safetensors", "hostile.safetensors", "k.safetensors", "sub/b.safetensors"],
           "C:\\loras\\k.safetensors"])
    assert values == ["k.safetensors", "sub/b.safetensors", "None", "nowhere.safetensors"]
