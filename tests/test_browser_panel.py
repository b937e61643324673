"""The panel, node info, LoRA List's rows and shared-name lookup in a real browser (Debian chromium driven by
Playwright).

A small aiohttp server serves web/ with stand-ins for the frontend's app/api modules and the pack's REAL routes and
live event, backed by real core state on the tiny model. LoRA metadata carries an XSS payload that must show as
text. One browser for the whole module. Skipped when playwright or chromium is missing, unless
LORADECK_REQUIRE_BROWSER=1 (CI installs both and sets it); screenshots go to $LORADECK_TEST_OUTPUT (default
tests/_output).

What the README says the panel shows is checked here, field by field: name, file, strength per component, block
weights and the strength range over the layers, one state (active / disabled / fused), match report, base model,
title, trigger words (copied on click), preview, which node applied each branch's stack and when.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image
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
PANEL = "[data-testid=loradeck-panel]"


def _png(colour=(220, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def xss_lora(lora_dir):
    """The kohya fixture re-saved with hostile metadata (title and trigger words), with a preview beside it."""
    path = lora_dir / "loras" / "hostile.safetensors"
    save_file(load_file(str(lora_dir / "loras" / "k.safetensors")), str(path), metadata={
        "ss_base_model_version": "sd_v1", "modelspec.title": XSS, "modelspec.trigger_phrase": f"{XSS}, hero"})
    (lora_dir / "loras" / "hostile.preview.png").write_bytes(_png())
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
def server(decks, lora_dir):
    """Started after the decks are built, so only later changes arrive as live events."""
    from helpers import runtime_for

    running = PanelTestServer(owners=[], runtime=decks[0].owner.runtime).start()
    running.names_runtime = runtime_for(str(lora_dir))  # where previews and names are looked up
    yield running
    running.stop()


@pytest.fixture(scope="module")
def page(server):
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 760, "height": 1500})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        tab = context.new_page()
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.errors = errors
        tab.goto(server.url)
        tab.wait_for_function("window.__ready === true || window.__harnessError !== undefined", timeout=30_000)
        assert tab.evaluate("window.__harnessError") is None, tab.evaluate("window.__harnessError")
        yield tab
        browser.close()


def _refresh(page):
    page.click(f"{PANEL} .loradeck-refresh")


def _adapter(page, name: str):
    return page.locator(f"{PANEL} li.loradeck-adapter").filter(has_text=name).first


def test_empty_state_on_open(page):
    page.wait_for_selector(f"{PANEL} .loradeck-empty", timeout=10_000)
    assert "No pipeline loaded yet" in page.inner_text(PANEL)


def test_adapters_weights_states_and_hostile_metadata_as_text(page, server, decks):
    server.owners[:] = [d.owner for d in decks]
    _refresh(page)
    page.wait_for_selector(f"{PANEL} .loradeck-pipeline >> nth=1", timeout=10_000)
    style = page.locator(f"{PANEL} li.loradeck-adapter[data-adapter=style]")
    text = style.text_content()
    assert "strength unet 0.8 · text_encoder 0.5" in text and "a.safetensors" in text
    assert style.get_attribute("data-state") == "active" and "matched" in text and "modules" in text
    hostile = _adapter(page, "hero")
    text = hostile.text_content()
    assert XSS in text and "SD 1.x" in text and "hostile.safetensors" in text
    assert hostile.get_attribute("data-state") == "fused" and "active" not in text  # one state, never two
    assert page.evaluate("window.__xss") is None


def test_disabled_is_not_active_and_block_weights_are_shown(page, decks):
    main, _ = decks
    main.set_weights("style", enabled=False)  # live event
    page.wait_for_selector(f"{PANEL} li.loradeck-adapter[data-adapter=style][data-state=disabled]", timeout=10_000)
    style = page.locator(f"{PANEL} li.loradeck-adapter[data-adapter=style]").first
    badges = style.locator(".loradeck-badge").all_inner_texts()
    assert badges == ["disabled"] and "(off)" in style.inner_text()
    main.set_weights("style", enabled=True, blocks={"down": 0.25, "mid": 0.0, "up": 1.0})
    page.wait_for_function("""() => document.querySelector('li.loradeck-adapter[data-adapter=style]')
        ?.textContent.includes('down=0.25, mid=0, up=1')""", timeout=10_000)
    text = page.locator(f"{PANEL} li.loradeck-adapter[data-adapter=style]").first.text_content()
    # the strength set (not the first layer's), and what the block weights make of it layer by layer
    assert "blocks down=0.25, mid=0, up=1" in text and "strength unet 0.8 · text_encoder 0.5" in text
    assert "layers unet 0–0.8 · text_encoder 0.5" in text


def test_each_branch_of_the_last_run_is_shown(page, decks):
    main, _ = decks
    owner, both = main.owner, main.stack
    from loradeck.core.stacks.specs import StackSpec

    owner.apply(StackSpec(both.adapters[:1]), "11", "Generate (one LoRA)")
    owner.apply(both, "5", "Generate (fused)")
    page.wait_for_selector(f"{PANEL} .loradeck-branch[data-source='11']", timeout=10_000)
    card = page.locator(f"{PANEL} section.loradeck-pipeline").filter(has_text="tiny-sd").first
    sources = card.locator(".loradeck-branch").evaluate_all(
        "els => els.map(e => [e.dataset.source, e.dataset.current])")
    assert sources[:2] == [["5", "true"], ["11", "false"]]  # newest first; the model holds the newest
    assert "Generate (fused) (#5)" in card.inner_text() and "in the model now" in card.inner_text()
    assert card.locator(".loradeck-branch[data-source='11'] li.loradeck-adapter").count() == 1


def test_many_adapters_and_long_names_stay_in_the_panel(page):
    crowded = page.locator(f"{PANEL} section.loradeck-pipeline").filter(has_text="crowded")
    assert crowded.locator("li.loradeck-adapter").count() == 12
    name = crowded.locator(".loradeck-name").first
    assert name.get_attribute("title") == f"{LONG}0"
    panel = page.locator(PANEL).bounding_box()
    box = name.bounding_box()
    assert box["x"] + box["width"] <= panel["x"] + panel["width"]
    assert name.evaluate("e => e.scrollWidth > e.clientWidth")  # cut with an ellipsis, full name in the tooltip


def test_preview_and_trigger_words_copy_on_click(page):
    hostile = _adapter(page, "hero")
    hostile.locator("img.loradeck-preview:not([hidden])").wait_for(timeout=10_000)
    assert hostile.locator("img.loradeck-preview").evaluate("img => img.naturalWidth") == 16
    hostile.locator(".loradeck-word", has_text="hero").click()
    assert page.evaluate("navigator.clipboard.readText()") == "hero"
    hostile.locator(".loradeck-word", has_text="hero").click(modifiers=["Shift"])
    assert page.evaluate("navigator.clipboard.readText()") == f"{XSS}, hero"
    assert page.evaluate("window.__xss") is None


def test_recent_activity_stays_open_through_live_updates(page, decks):
    page.click(f"{PANEL} .loradeck-recent summary")
    main, _ = decks
    main.set_weights("style", model=0.25)  # reconcile -> core event -> send_sync -> websocket -> panel
    page.wait_for_function(
        "() => document.querySelector('li.loradeck-adapter[data-adapter=style]')?.textContent.includes('unet 0.25')",
        timeout=10_000)
    assert page.locator(f"{PANEL} details.loradeck-recent").evaluate("d => d.open")
    assert "Recent activity (" in page.inner_text(PANEL)


def test_branches_keep_their_order_after_refresh(page):
    """Live events and the GET answer give the same order: newest first, the model's current branch on top."""
    card = page.locator(f"{PANEL} section.loradeck-pipeline").filter(has_text="tiny-sd").first
    order = "els => els.map(e => [e.dataset.source, e.dataset.current])"
    live = card.locator(".loradeck-branch").evaluate_all(order)
    _refresh(page)
    page.wait_for_timeout(500)
    card = page.locator(f"{PANEL} section.loradeck-pipeline").filter(has_text="tiny-sd").first
    assert card.locator(".loradeck-branch").evaluate_all(order) == live and live[0][1] == "true"


def test_release_drops_a_pipeline(page, server, decks):
    _, crowded = decks
    card = page.locator(f"{PANEL} section.loradeck-pipeline[data-pipeline='{crowded.owner.id}']")
    card.locator(".loradeck-release").click()
    card.wait_for(state="detached", timeout=10_000)
    assert crowded.owner not in server.owners and decks[0].owner in server.owners


def test_a_wan_pair_shows_each_expert_and_its_file_by_label(page, server, decks):
    """Wan 2.2's experts by the names people use (high noise, low noise), and the pair's second file."""
    from loradeck.core.families import tiny_pipeline

    fixtures = Path(__file__).parent / "fixtures" / "trainers" / "wan"
    wan = Deck(tiny_pipeline("wan", variant="t2v22"), label="tiny-wan22 (built-in) [auto]",
               runtime=decks[0].owner.runtime)
    server.owners.append(wan.owner)
    wan.add_pair(str(fixtures / "wan22_t2v_lightning_high.safetensors"),
                 str(fixtures / "wan22_t2v_lightning_low.safetensors"), "lightning", 1.0, 0.5)  # live event
    page.wait_for_function("""() => document.querySelector('li.loradeck-adapter[data-adapter=lightning]')
        ?.textContent.includes('low noise')""", timeout=10_000)
    text = page.locator(f"{PANEL} li.loradeck-adapter[data-adapter=lightning]").first.text_content()
    assert "strength transformer (high noise) 1 · transformer_2 (low noise) 0.5" in text
    assert "wan22_t2v_lightning_high.safetensors" in text
    assert "transformer_2 (low noise) wan22_t2v_lightning_low.safetensors" in text
    assert not page.errors, page.errors


def test_load_lora_node_shows_its_info_and_records_hashes(page, decks, xss_lora, lora_dir, use_models):
    use_models(str(lora_dir))
    handle = PipelineHandle(decks[0].owner)
    ui = NODE_CLASS_MAPPINGS["LoadLoRA|LoRADeck"]().load(handle, "hostile.safetensors", 1.0, 1.0)["ui"]
    node = page.evaluate("""async (ui) => { const node = window.__nodes['LoadLoRA|LoRADeck']; node.onExecuted(ui);
        await new Promise((r) => setTimeout(r, 500));
        return {text: node.box.innerText, models: node.properties.models, calls: node.originalCalls,
                serialize: node.widgets[0].serialize, height: node.size[1],
                preview: node.box.querySelector('img.loradeck-node-preview:not([hidden])')?.naturalWidth,
                chips: [...node.box.querySelectorAll('.loradeck-word')].map((c) => c.textContent)}; }""", ui)
    assert "modules matched" in node["text"] and XSS in node["text"] and node["preview"] == 16
    assert node["chips"] == [XSS, "hero"]
    sha = ui["loradeck_models"][0]["sha256"]
    assert node["models"] == [{"name": "hostile.safetensors", "url": f"urn:sha256:{sha}", "directory": "loras",
                               "hash": sha, "hash_type": "SHA256"}]
    assert node["calls"] == 1 and node["serialize"] is False and node["height"] > 80  # grown to fit its text
    assert page.evaluate("window.__xss") is None
    page.screenshot(path=str(output_dir() / "browser-panel.png"), full_page=True)


def test_lora_list_rows_add_toggle_remove_and_keep_hashes(page, files):
    sha = hashlib.sha256(Path(files["a"]).read_bytes()).hexdigest()
    values = page.evaluate("""async (sha) => {
        const node = window.__nodes['LoRAList|LoRADeck'];
        const widget = node.widgets.find((w) => w.name === 'loras');
        const seen = [];
        widget.value = JSON.stringify([{lora_name: 'a.safetensors', strength_model: 0.8, strength_clip: 0.5}]);
        seen.push(widget.value);
        node.box.querySelector('.loradeck-row-add').click();
        seen.push(widget.value);  // a new row waits for its file
        const select = node.box.querySelector('[data-row="1"] .loradeck-row-name');
        const placeholder = select.value;
        select.value = 'hostile.safetensors';
        select.dispatchEvent(new Event('change'));
        const wait = () => new Promise((r) => setTimeout(r, 100));
        for (let i = 0; i < 50 && !JSON.parse(widget.value)[1]?.sha256; i++) await wait();
        seen.push(widget.value);
        const toggle = node.box.querySelector('[data-row="0"] .loradeck-row-on');
        toggle.click();
        seen.push(widget.value);
        node.box.querySelector('[data-row="1"] .loradeck-row-remove').click();
        seen.push(widget.value);
        node.onExecuted({loradeck_models: [{name: 'a.safetensors', sha256: sha, listed: true}]});
        seen.push(widget.value);
        const rows = node.box.querySelectorAll('.loradeck-row:not(.loradeck-row-head)').length;
        return {seen: seen.map((v) => JSON.parse(v)), rows, placeholder};
    }""", sha)
    seen = values["seen"]
    assert seen[0] == [{"enabled": True, "lora_name": "a.safetensors", "strength_model": 0.8, "strength_clip": 0.5,
                        "sha256": ""}]
    assert seen[1][1]["lora_name"] == "" and values["placeholder"] == ""  # no file guessed: picked in the row
    added = seen[2][1]
    assert added["lora_name"] == "hostile.safetensors" and len(added["sha256"]) == 64 and added["strength_model"] == 0.8
    assert seen[3][0]["enabled"] is False and len(seen[4]) == 1 and values["rows"] == 1
    assert seen[5][0]["sha256"] == sha


def test_a_failing_route_shows_an_error(page):
    page.route("**/api/loradeck/snapshot", lambda route: route.fulfill(status=500, body="boom"))
    _refresh(page)
    page.wait_for_selector(f"{PANEL} [role=alert]", timeout=10_000)
    assert "HTTP 500" in page.inner_text(f"{PANEL} [role=alert]")
    page.unroute("**/api/loradeck/snapshot")
    _refresh(page)
    page.wait_for_selector(f"{PANEL} [role=alert]", state="detached", timeout=10_000)
    page.errors[:] = [e for e in page.errors if "status of 500" not in e]  # the browser's log of the forced 500


def test_every_web_module_loads_on_its_own(page, server):
    """The frontend imports every .js under web/: helpers must load without side effects or errors."""
    listed = json.loads(page.evaluate("fetch('/extensions').then(r => r.text())"))
    assert {u.rsplit("/", 1)[-1] for u in listed} >= {"panel.js", "node_info.js", "api_client.js", "lora_list.js"}
    extensions = page.evaluate("window.__app.extensions.map(e => e.name)")
    assert sorted(extensions) == ["loradeck.ErrorTitles", "loradeck.LoRAList", "loradeck.NodeInfo", "loradeck.Panel",
                                  "loradeck.SharedNames"]


GONE = {"name": "nowhere.safetensors", "directory": "loras", "url": "urn:sha256:" + "ab" * 32, "hash": "ab" * 32,
        "hash_type": "SHA256"}


def test_shared_workflow_names_are_switched_before_the_graph_loads(page, server, lora_dir, files, use_models):
    """A workflow from another machine, as graph data before the frontend configures it: a Windows path (same file
    name, no hash), a renamed file found by its recorded hash, a LoRA List row found by its hash, a missing file.
    Each change is told truthfully; what cannot be found is left to the node's box; old entries without `url` get
    one."""
    server.names_runtime = use_models(str(lora_dir))  # the route runs on the server's thread
    sha_b, sha_k = (hashlib.sha256(Path(files[k]).read_bytes()).hexdigest() for k in ("b", "k"))
    graph = {"nodes": [
        {"id": 1, "type": "StackLoRA|LoRADeck", "widgets_values": [
            True, "C:\\loras\\k.safetensors", 1, 1, True, "friend/renamed.safetensors", 1, 1,
            True, "None", 1, 1, True, "nowhere.safetensors", 1, 1],
         "properties": {"models": [{"name": "friend/renamed.safetensors", "directory": "loras", "hash": sha_b},
                                   GONE]}},
        {"id": 2, "type": "LoRAList|LoRADeck", "widgets_values": [json.dumps([
            {"lora_name": "old/place.safetensors", "sha256": sha_k}])]},
        {"id": 3, "type": "KSampler", "widgets_values": ["friend/renamed.safetensors"]}]}
    result = page.evaluate("""async (graph) => {
        const ext = window.__app.extensions.find((e) => e.name === "loradeck.SharedNames");
        window.__app.extensionManager.toasts.length = 0;
        await ext.beforeConfigureGraph(graph);
        return {graph, toasts: window.__app.extensionManager.toasts};
    }""", graph)
    stack, rows, other = result["graph"]["nodes"]
    assert [stack["widgets_values"][i] for i in (1, 5, 9, 13)] == [
        "k.safetensors", "sub/b.safetensors", "None", "nowhere.safetensors"]
    assert stack["properties"]["models"] == [{"name": "sub/b.safetensors", "directory": "loras", "hash": sha_b,
                                              "url": f"urn:sha256:{sha_b}"}]
    # a file that is nowhere here: its hash is kept, out of the frontends' missing-model reports
    assert stack["properties"]["loradeck_missing"] == [GONE]
    assert json.loads(rows["widgets_values"][0])[0]["lora_name"] == "k.safetensors"
    assert other["widgets_values"] == ["friend/renamed.safetensors"]  # not a LoRA Deck node: untouched
    (info,) = [t["detail"] for t in result["toasts"] if t["severity"] == "info"]
    assert not [t for t in result["toasts"] if t["severity"] != "info"]  # a missing file is said by its node's box
    assert ('"C:\\loras\\k.safetensors" → "k.safetensors": the only file with that file name; the workflow '
            "recorded no hash, so its content was not checked.") in info
    assert ('"friend/renamed.safetensors" → "sub/b.safetensors": the file with the SHA-256 recorded in the '
            "workflow (same content, other name).") in info
    assert '"old/place.safetensors" → "k.safetensors"' in info
    assert not page.errors, page.errors


ERROR_TEXTS = """async () => {
    const m = await import('/extensions/loradeck/error_titles.js');
    const ext = window.__app.extensions.find((e) => e.name === 'loradeck.ErrorTitles');
    ext.beforeRegisterNodeDef({}, {name: 'LoadLoRA|LoRADeck', display_name: 'Load LoRA (LoRA Deck)'});
    ext.beforeRegisterNodeDef({}, {name: 'LoRAList|LoRADeck', display_name: 'LoRA List (LoRA Deck)'});
    const why = ': was not found in your loras folders. Put the file in models/loras or pick one.';
    const box = ['gone/x.safetensors' + why];
    const said = "LoRA file 'gone/x.safetensors'" + why, other = "LoRA file 'y.safetensors'" + why;
    const reason = (details) => ({message: 'Custom validation failed for node', details,
                                  extra_info: {input_name: details.split(' - ')[0]}});
    const nodeErrors = {
        '2': {class_type: 'LoadLoRA|LoRADeck', errors: [reason('lora_name - lora_name: ' + said)]},
        '3': {class_type: 'LoRAList|LoRADeck', errors: [reason('loras - row 1: ' + said + '\\nrow 2: ' + other)]},
        '4': {class_type: 'KSampler', errors: [reason('seed - ' + said)]},
    };
    m.renameNodeErrors(nodeErrors, (id) => box);
    const history135 = {History: [{status: {messages: [['execution_start', {}],
        ['execution_error', {node_type: 'LoadLoRA|LoRADeck', node_id: '2'}]]}}]};
    const history158 = [{execution_error: {node_type: 'LoRAList|LoRADeck'}},
                        {execution_error: {node_type: 'VAEDecode'}}];
    m.renameHistoryErrors(history135);
    m.renameHistoryErrors(history158);
    return {nodeErrors, history135: history135.History[0].status.messages[1][1].node_type,
            history158: history158.map((item) => item.execution_error.node_type),
            logs: m.withDisplayNames('* LoadLoRA|LoRADeck 2:\\n* KSampler 4:\\n* Unknown|LoRADeck 5:'),
            rawLogs: m.renameLogEntries({size: 300, entries: [{t: '1', m: '* LoadLoRA|LoRADeck 2:\\n'},
                                                              {t: '2', m: '* KSampler 4:\\n'}, {t: '3', m: 7}]})};
}"""


def test_error_texts_name_our_nodes_by_display_name_and_point_to_the_box(page):
    """error_titles.js's renaming, as the wrapped api methods apply it: node_errors (display name; a reason the node's
    box already says, on every line, points to the box), history errors in 1.35.9's and 1.58.1's shapes, log text.
    Other nodes and unknown IDs stay as they are."""
    got = page.evaluate(ERROR_TEXTS)
    errors = got["nodeErrors"]
    assert errors["2"]["class_type"] == "Load LoRA (LoRA Deck)"
    assert errors["2"]["errors"][0]["details"] == "lora_name: see this node's box"
    assert errors["3"]["class_type"] == "LoRA List (LoRA Deck)"  # row 2 is not in the box: said in full
    assert "row 2: LoRA file 'y.safetensors'" in errors["3"]["errors"][0]["details"]
    assert errors["4"]["class_type"] == "KSampler" and errors["4"]["errors"][0]["details"].startswith("seed - LoRA")
    assert got["history135"] == "Load LoRA (LoRA Deck)"
    assert got["history158"] == ["LoRA List (LoRA Deck)", "VAEDecode"]
    assert got["logs"] == "* Load LoRA (LoRA Deck) 2:\n* KSampler 4:\n* Unknown|LoRADeck 5:"
    # the Logs terminal's entries (getRawLogs answer, "logs" message): only the text changes
    assert got["rawLogs"] == {"size": 300, "entries": [{"t": "1", "m": "* Load LoRA (LoRA Deck) 2:\n"},
                                                       {"t": "2", "m": "* KSampler 4:\n"}, {"t": "3", "m": 7}]}
