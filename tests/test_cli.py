"""The ``loradeck`` command as a user meets it: fast help, one-line errors with an exit code, --debug."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UI = os.path.join(ROOT, "example_workflows", "loradeck-demo.json")
HEAVY = ("torch", "diffusers", "transformers", "peft")


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=ROOT).stdout


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loradeck.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)


def test_help_and_argument_errors_import_neither_torch_nor_diffusers():
    loaded = _python(
        "import contextlib, io, json, sys\n"
        "from loradeck.cli import main\n"
        "for argv in (['--help'], ['run', '--help'], ['demo', '--model', 'nope'], ['run', 'no-such-file.json']):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()), "
        "contextlib.redirect_stderr(io.StringIO()):\n"
        "        main(argv)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))\n")
    assert json.loads(loaded) == []


def test_importing_the_core_loads_no_node():
    code = "import sys, loradeck.core; print([m for m in sys.modules if m.startswith('loradeck.nodes')])"
    assert _python(code).strip() == "[]"


def test_the_package_exports_the_node_tables_to_comfyui_on_access():
    code = ("import loradeck; print(loradeck.WEB_DIRECTORY, hasattr(loradeck, 'NODE_CLASS_MAPPINGS'), "
            "len(loradeck.NODE_DISPLAY_NAME_MAPPINGS), hasattr(loradeck, 'setup_module'))")
    from loradeck.nodes import NODE_DISPLAY_NAME_MAPPINGS

    assert _python(code).split() == ["./web", "True", str(len(NODE_DISPLAY_NAME_MAPPINGS)), "False"]


def _assert_one_line_errors(result, *expected: str) -> list[str]:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and not result.stdout
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("ERROR ")
    assert all(line.startswith(("ERROR ", "  ")) for line in lines), lines  # a summary, then one line per problem
    for text in expected:
        assert any(text in line for line in lines), (text, lines)
    return lines


@pytest.fixture
def malformed(tmp_path):
    with open(UI) as f:
        ui = json.load(f)
    del ui["nodes"][0]["id"]
    del ui["nodes"][1]["type"]
    ui["links"] += [[1, 2], "x"]
    files = {"binary.json": bytes(range(256)) * 8, "list.json": b"[1, 2, 3]", "ui.json": json.dumps(ui).encode(),
             "image.png": b"\x89PNG\r\n\x1a\n" + bytes(64)}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return tmp_path


@pytest.mark.parametrize(("name", "expected"), [
    ("binary.json", ["binary.json: not a workflow (neither UTF-8 JSON text nor a PNG)"]),
    ("list.json", ["list.json: neither an API-format nor a UI-format ComfyUI workflow"]),
    ("image.png", ["image.png: not a readable PNG"]),
])
def test_a_file_that_is_not_a_workflow_is_one_line(malformed, name, expected):
    _assert_one_line_errors(_cli("run", name, "--output-dir", "out", cwd=malformed), *expected)


def test_malformed_ui_nodes_and_links_are_one_line_each(malformed):
    lines = _assert_one_line_errors(_cli("run", "ui.json", "--output-dir", "out", cwd=malformed),
                                    "nodes[0] (LoadPipeline|LoRADeck) has no valid 'id'",
                                    "nodes[1] (id 2) has no 'type'", "not [id, from node, from slot",
                                    "pipeline: linked to node 1, which does not exist")
    assert lines[0].startswith("ERROR the workflow has ") and not (malformed / "out").exists()


def test_missing_paths_are_argument_errors(malformed):
    result = _cli("run", "ui.json", "--models-dir", "nowhere", cwd=malformed)
    assert result.returncode == 2 and "argument --models-dir: no such folder: nowhere" in result.stderr
    result = _cli("run", "nothing.json", cwd=malformed)
    assert result.returncode == 2 and "argument workflow: no such file: nothing.json" in result.stderr


@pytest.mark.parametrize("before", [True, False])
def test_debug_shows_the_traceback_before_or_after_the_command(malformed, before):
    args = ["--debug", "run", "binary.json"] if before else ["run", "binary.json", "--debug"]
    result = _cli(*args, cwd=malformed)
    assert result.returncode == 1 and "Traceback" in result.stderr and "WorkflowError" in result.stderr
