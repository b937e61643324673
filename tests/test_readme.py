"""The README's reference tables say what the code does: every node and input, every setting and its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loradeck.core.settings import Settings
from loradeck.nodes import NODE_CLASS_MAPPINGS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _table_rows(first_header: str) -> dict[str, list[str]]:
    """The rows of the README table whose header starts with ``first_header``, keyed by their first cell."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0].replace("\\|", "|").strip("`")] = cells
    return rows


NODES = _table_rows("node ID")


@pytest.mark.parametrize("node_id", sorted(NODE_CLASS_MAPPINGS))
def test_every_node_and_each_of_its_inputs_is_in_the_node_table(node_id):
    assert node_id in NODES, f"README's node table has no row for {node_id}"
    documented = set(re.findall(r"`([A-Za-z_]+)`", NODES[node_id][2]))
    inputs = NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    for group in ("required", "optional"):
        for name in inputs.get(group, {}):
            assert re.sub(r"_\d+$", "_N", name) in documented, f"{node_id}: input {name!r} not in the README"


def test_the_node_table_lists_no_node_that_does_not_exist():
    assert set(NODES) <= set(NODE_CLASS_MAPPINGS)


def test_every_setting_is_documented_with_its_default():
    rows = {re.findall(r"`(LORADECK_\w+)`", cells[1])[0]: cells for cells in _table_rows("setting").values()}
    source = (Path(__file__).resolve().parents[1] / "core" / "settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r"\"(LORADECK_\w+)\"", source)) - {"LORADECK_FILE_CACHE_MB"}  # the older name
    assert read == set(rows)
    defaults = Settings.from_env({})
    assert rows["LORADECK_MAX_ADAPTERS"][2] == f"`{defaults.max_adapters}`"
    assert rows["LORADECK_MAX_PIPELINES"][2] == f"`{defaults.max_pipelines}`"
    assert rows["LORADECK_MODELS_DIR"][2] == f"`./{defaults.models_dir}`"
    assert rows["LORADECK_PARK_DEVICE"][2] == f"`{defaults.park_device}`"
    assert "LORADECK_FILE_CACHE_MB" in rows["LORADECK_STORE_MB"][1]
    assert (defaults.allow_pickle, defaults.allow_partial, defaults.tokenizer_dirs) == (False, False, ())
    assert [rows[k][2] for k in ("LORADECK_ALLOW_PICKLE", "LORADECK_ALLOW_PARTIAL", "LORADECK_TOKENIZERS")] == [
        "off", "off", "none"]
