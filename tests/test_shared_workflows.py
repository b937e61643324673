"""A workflow saved on one machine runs on another: other subfolders, Windows separators, other names (by hash)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import a1111_shorthash
from loradeck.core.errors import LoraFileError
from loradeck.core.files.hashing import HashIndex, stream_sha256
from loradeck.core.files.lookup import locate, normalise_hash
from loradeck.nodes import NODE_CLASS_MAPPINGS, records
from loradeck.runner import WorkflowError, run_workflow
from loradeck.runner.workflow_file import from_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UI = os.path.join(ROOT, "example_workflows", "loradeck-demo.json")
DEMO = os.path.join(ROOT, "demo", "models", "loras")
KOHYA = "loradeck-demo-kohya.safetensors"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class CountingHasher:
    def __init__(self):
        self.paths: list[str] = []

    def __call__(self, path: str) -> str:
        self.paths.append(path)
        return stream_sha256(path)


@pytest.fixture
def index():
    return HashIndex(CountingHasher())


@pytest.mark.parametrize("digits", [64, 10])
def test_a_renamed_file_is_found_by_its_recorded_hash(lora_dir, files, index, digits):
    roots = [str(lora_dir / "loras")]
    found = locate("friend/renamed.safetensors", roots, [_sha(files["b"])[:digits].upper()], index)
    assert (found.name, found.how, found.path) == ("sub/b.safetensors", "hash", os.path.realpath(files["b"]))
    hashed = len(index.hasher.paths)
    assert locate("other-name.safetensors", roots, [_sha(files["b"])], index).how == "hash"
    assert len(index.hasher.paths) == hashed  # cached by (path, size, mtime)


def test_a_renamed_file_is_found_by_the_hash_a1111_wrote_for_it(lora_dir, files, index):
    """A1111 / Forge images name a LoRA by 12 hex digits of the hash of the bytes after its header (their
    ``Lora hashes``): relinking takes that too, and the 10-hex AutoV2 and full SHA-256 still work."""
    roots = [str(lora_dir / "loras")]
    found = locate("friend/renamed.safetensors", roots, [a1111_shorthash(files["b"])], index)
    assert (found.name, found.how) == ("sub/b.safetensors", "hash")
    assert a1111_shorthash(files["b"]) != _sha(files["b"])[:12]  # not the whole file's hash
    with pytest.raises(LoraFileError):
        locate("friend/renamed.safetensors", roots, [_sha(files["b"])[:12]], index)


def test_no_hashing_when_the_name_resolves(lora_dir, files, index):
    roots = [str(lora_dir / "loras")]
    for name, how in (("sub/b.safetensors", "exact"), ("sub\\b.safetensors", "separators")):
        assert locate(name, roots, [_sha(files["a"])], index).how == how
    assert locate("elsewhere/b.safetensors", roots, (), index).how == "file name"  # no hash recorded: the name
    assert index.hasher.paths == []


def test_the_recorded_hash_beats_a_same_named_file(lora_dir, files, index):
    found = locate("elsewhere/b.safetensors", [str(lora_dir / "loras")], [_sha(files["a"])], index)
    assert (found.name, found.how) == ("a.safetensors", "hash")


def _two_same_named(tmp_path, files):
    root = tmp_path / "loras"
    for folder, source in (("sd15", "a"), ("amused", "k")):
        (root / folder).mkdir(parents=True)
        (root / folder / "lora_seed1_r4.safetensors").write_bytes(Path(files[source]).read_bytes())
    return [str(root)]


def test_several_same_named_files_are_an_error_listing_them(tmp_path, files, index):
    roots = _two_same_named(tmp_path, files)
    with pytest.raises(LoraFileError, match="2 files elsewhere have its file name.*amused/.*sd15/"):
        locate("old/lora_seed1_r4.safetensors", roots, (), index)
    found = locate("old/lora_seed1_r4.safetensors", roots, [_sha(files["a"])], index)  # the hash tells them apart
    assert (found.name, found.how) == ("sd15/lora_seed1_r4.safetensors", "hash")


def test_a_same_named_file_with_other_content_is_refused(tmp_path, files, index):
    root = tmp_path / "loras" / "moved"
    root.mkdir(parents=True)
    (root / "b.safetensors").write_bytes(Path(files["k"]).read_bytes())
    with pytest.raises(LoraFileError, match="'moved/b.safetensors' has its file name but different content"):
        locate("sub/b.safetensors", [str(tmp_path / "loras")], [_sha(files["b"])], index)


def test_a_changed_file_is_hashed_again(tmp_path, files, index):
    root = tmp_path / "loras"
    root.mkdir()
    copy_path = root / "x.safetensors"
    copy_path.write_bytes(Path(files["a"]).read_bytes())
    assert locate("y.safetensors", [str(root)], [_sha(files["a"])], index).how == "hash"
    copy_path.write_bytes(Path(files["k"]).read_bytes())
    os.utime(copy_path, ns=(1, 1))
    with pytest.raises(LoraFileError, match="not found in your loras folders, by name or by the hash recorded"):
        locate("y.safetensors", [str(root)], [_sha(files["a"])], index)
    assert len(index.hasher.paths) == 2


def test_a_hash_finds_files_behind_links_in_the_roots_and_nothing_else_outside(lora_dir, tmp_path, files, index):
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(Path(files["a"]).read_bytes() + b"only outside")
    with pytest.raises(LoraFileError):  # outside the roots and no link to it: never found
        locate("gone.safetensors", [str(lora_dir / "loras")], [_sha(outside)], index)
    link = lora_dir / "loras" / "escape.safetensors"
    link.symlink_to(outside)
    try:  # a link inside a root is followed, as ComfyUI follows it: the file is one of the user's LoRAs
        found = locate("gone.safetensors", [str(lora_dir / "loras")], [_sha(outside)], index)
        assert (found.name, found.how, found.path) == ("escape.safetensors", "hash", str(link))
    finally:
        link.unlink()


@pytest.mark.parametrize("value,expected", [
    ("SHA256:" + "AB" * 32, "ab" * 32), ("0123456789", "0123456789"), ("0123456789AB", "0123456789ab"),
    ("xyz", None), ("", None), (None, None),
    ("g" * 64, None), ("12345", None), ("a" * 63, None),
])
def test_hash_forms(value, expected):
    assert normalise_hash(value) == expected


def test_recorded_hashes_come_from_the_node_in_the_workflow():
    workflow = {"nodes": [
        {"id": 3, "properties": {"models": [{"name": "a.safetensors", "directory": "loras", "hash": "h1"},
                                            {"name": "ckpt.safetensors", "directory": "checkpoints", "hash": "h2"},
                                            {"name": "b.safetensors", "hash": "h3"}, "junk", {"name": "c"}]}},
        {"id": 4, "properties": {"models": [{"name": "a.safetensors", "directory": "loras", "hash": "other"}]}},
    ]}
    assert records.recorded_hashes({"workflow": workflow}, "3") == {"a.safetensors": ("h1",), "b.safetensors": ("h3",)}
    for junk in (None, {}, {"workflow": None}, {"workflow": {"nodes": "x"}}, {"workflow": {"nodes": [1, None]}}):
        assert records.recorded_hashes(junk, "3") == {}


def test_loader_nodes_send_hashes_and_info_in_their_ui(node_handle, files):
    handle = node_handle
    ui = NODE_CLASS_MAPPINGS["LoadLoRA|LoRADeck"]().load(handle, "k.safetensors", 1.0, 1.0)["ui"]
    sha = _sha(files["k"])
    assert ui["loradeck_models"] == [{"name": "k.safetensors", "sha256": sha, "autov2": sha[:10], "listed": True}]
    assert ui["loradeck_info"][0].startswith("k: ") and "modules matched" in ui["loradeck_info"][0]
    slots = {f"{k}_{i}": v for i in range(1, 5) for k, v in (
        ("enabled", True), ("lora_name", "sub\\b.safetensors" if i == 1 else "None"), ("strength_model", 1.0),
        ("strength_clip", 1.0))}
    out = NODE_CLASS_MAPPINGS["StackLoRA|LoRADeck"]().stack(handle, lora_stack=[("a.safetensors", 1, 1)], **slots)
    names = [m["name"] for m in out["ui"]["loradeck_models"]]
    assert names == ["a.safetensors", "sub\\b.safetensors"] and out["result"][0].stack.names == ("a", "b")
    demo = NODE_CLASS_MAPPINGS["LoadLoRA|LoRADeck"]().load(handle, "loradeck-demo-style.safetensors", 1, 1)["ui"]
    assert demo["loradeck_models"][0]["listed"] is False  # ComfyUI's own list lacks the demo LoRAs: not recorded


@pytest.fixture
def node_handle(lora_dir, use_models):
    from helpers import make_pipe
    from loradeck.core import Deck
    from loradeck.core.api import PipelineHandle

    use_models(str(lora_dir))
    return PipelineHandle(Deck(make_pipe()).owner)


def _ui() -> dict:
    with open(UI) as f:
        return json.load(f)


def _node(workflow: dict, node_id: int) -> dict:
    return next(n for n in workflow["nodes"] if n["id"] == node_id)


def _pixels(paths) -> np.ndarray:
    (path,) = paths
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """The one-LoRA branch of the demo as shipped."""
    return _pixels(run_workflow(UI, str(tmp_path_factory.mktemp("orig")), order=["11"]).saved)


def test_workflow_from_another_machine_runs_by_hash(tmp_path, original):
    """Node 9's LoRA is known there as 'friend\\renamed.safetensors'; only its recorded hash finds it here."""
    workflow = _ui()
    node = _node(workflow, 9)
    node["widgets_values"][0] = "friend\\renamed.safetensors"
    node["properties"]["models"] = [{"name": "friend\\renamed.safetensors", "directory": "loras",
                                     "hash": _sha(os.path.join(DEMO, KOHYA)), "hash_type": "SHA256"}]
    shared = run_workflow(from_data(copy.deepcopy(workflow), "shared"), str(tmp_path / "a"), order=["11"])
    assert np.array_equal(_pixels(shared.saved), original)
    node["properties"]["models"] = []
    with pytest.raises(WorkflowError, match=r"node 9 .*renamed\.safetensors.*not found"):
        run_workflow(from_data(workflow, "unshared"), str(tmp_path / "b"), order=["11"])


def test_windows_separators_and_other_subfolders(tmp_path, original):
    workflow = _ui()
    _node(workflow, 9)["widgets_values"][0] = f"C:\\ComfyUI\\models\\loras\\sdxl\\{KOHYA}"
    shared = run_workflow(from_data(workflow, "windows"), str(tmp_path), order=["11"])
    assert np.array_equal(_pixels(shared.saved), original)


def test_a1111_hash_is_the_same_read_or_streamed_and_sshs_model_hash_wins(tmp_path, runtime):
    """The hash recorded while a file is read for its tensors equals the one streamed for a file never read; a
    file carrying kohya's ``sshs_model_hash`` is known by that, as A1111 knows it."""
    import torch
    from safetensors.torch import save_file

    from loradeck.core.files.hashing import HashIndex, shorthash

    plain, tagged = str(tmp_path / "plain.safetensors"), str(tmp_path / "tagged.safetensors")
    tensors = {"lora_unet_x.lora_down.weight": torch.ones(2, 3)}
    save_file(tensors, plain, metadata={"ss_output_name": "plain"})
    save_file(tensors, tagged, metadata={"sshs_model_hash": "c0ffee" * 10 + "abcd"})
    streamed = HashIndex()
    assert shorthash(streamed.a1111(plain)) == a1111_shorthash(plain)
    assert shorthash(streamed.a1111(tagged)) == a1111_shorthash(tagged) == "c0ffeec0ffee"
    runtime.store.read(plain)
    assert runtime.hashes.a1111(plain) == streamed.a1111(plain)
