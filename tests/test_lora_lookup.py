"""Resolving LoRA names from workflows to local files: separators, subfolders, hashes, hostile names."""

from __future__ import annotations

import shutil

import pytest

from loradeck.core.errors import LoraFileError
from loradeck.core.files import lookup
from loradeck.core.files.lookup import listing, locate


def test_name_resolution(lora_dir):
    roots = [str(lora_dir / "loras")]
    assert locate("sub/b.safetensors", roots).path.endswith("sub/b.safetensors")
    assert locate("sub\\b.safetensors", roots).path.endswith("sub/b.safetensors")
    assert locate("other/place/b.safetensors", roots).path.endswith("sub/b.safetensors")


@pytest.mark.parametrize("name", ["../outside.safetensors", "/etc/passwd", "../../x.safetensors",
                                  "a.ckpt", "sub", "", "user/repo"])
def test_hostile_or_wrong_names_never_escape(lora_dir, name):
    roots = [str(lora_dir / "loras")]
    with pytest.raises(LoraFileError):
        locate(name, roots)


def test_a_link_inside_a_root_is_followed_wherever_it_points(tmp_path, files):
    """ComfyUI's rule: a symlinked file or folder under a root is one of its models (kept on another disk,
    shared between installs); the name is the link's."""
    root, elsewhere = tmp_path / "loras", tmp_path / "elsewhere"
    (elsewhere / "acc").mkdir(parents=True)
    root.mkdir()
    shutil.copyfile(files["a"], elsewhere / "seed2.safetensors")
    shutil.copyfile(files["k"], elsewhere / "acc" / "k.safetensors")
    (root / "linked_seed2.safetensors").symlink_to(elsewhere / "seed2.safetensors")
    (root / "acc_linked").symlink_to(elsewhere / "acc", target_is_directory=True)
    assert listing([str(root)]) == ["acc_linked/k.safetensors", "linked_seed2.safetensors"]
    found = locate("linked_seed2.safetensors", [str(root)])
    assert (found.name, found.path, found.how) == ("linked_seed2.safetensors", str(root / "linked_seed2.safetensors"),
                                                   "exact")
    assert locate("acc_linked\\k.safetensors", [str(root)]).path == str(root / "acc_linked" / "k.safetensors")
    assert locate("other/k.safetensors", [str(root)]).name == "acc_linked/k.safetensors"  # by its file name


def test_a_name_never_leaves_the_roots_by_itself(tmp_path, files):
    """Only a link that sits inside a root leads out of it: '..' and absolute names do not, even through a link."""
    root, deep = tmp_path / "models" / "loras", tmp_path / "deep"
    (root / "sub").mkdir(parents=True)
    (deep / "inner").mkdir(parents=True)
    shutil.copyfile(files["a"], tmp_path / "models" / "secret.safetensors")
    shutil.copyfile(files["a"], deep / "secret.safetensors")
    shutil.copyfile(files["k"], deep / "inner" / "shared.safetensors")
    (root / "sub" / "linked").symlink_to(deep / "inner", target_is_directory=True)
    for name in ("../secret.safetensors", str(tmp_path / "models" / "secret.safetensors"),
                 "sub/linked/../secret.safetensors",  # the OS would climb from the link's target: never done
                 "sub/../../secret.safetensors"):
        with pytest.raises(LoraFileError, match="not found"):
            locate(name, [str(root)])
    assert locate("sub/linked/shared.safetensors", [str(root)]).path == str(root / "sub/linked/shared.safetensors")


def test_loops_are_walked_once(tmp_path, files):
    """Links back up the tree (to the root, to a parent, to themselves) are listed once, under the real name, and
    a link to a sibling folder is listed under both names, as ComfyUI lists them."""
    root = tmp_path / "loras"
    (root / "a" / "b").mkdir(parents=True)
    shutil.copyfile(files["a"], root / "a" / "b" / "x.safetensors")
    (root / "a" / "b" / "up").symlink_to("..", target_is_directory=True)
    (root / "a" / "b" / "top").symlink_to(root, target_is_directory=True)
    (root / "self").symlink_to("self")  # a link to itself: neither a file nor a folder
    (root / "twin").symlink_to(root / "a", target_is_directory=True)
    (root / "loop1.safetensors").symlink_to("loop2.safetensors")
    (root / "loop2.safetensors").symlink_to("loop1.safetensors")
    assert listing([str(root)]) == ["a/b/x.safetensors", "twin/b/x.safetensors"]
    with pytest.raises(LoraFileError, match="symlink loop"):
        locate("loop1.safetensors", [str(root)])


def test_fanning_links_stop_at_the_folder_budget(tmp_path, files, monkeypatch):
    """No loop, but two links from each folder to the next: 2**20 names for one file. The walk stops."""
    root, levels = tmp_path / "loras", [tmp_path / "elsewhere" / f"level{i}" for i in range(21)]
    root.mkdir()
    for i, level in enumerate(levels):
        level.mkdir(parents=True)
        if i + 1 < len(levels):
            for twin in "ab":
                (level / twin).symlink_to(levels[i + 1], target_is_directory=True)
    shutil.copyfile(files["a"], levels[-1] / "x.safetensors")
    (root / "start").symlink_to(levels[0], target_is_directory=True)
    shutil.copyfile(files["a"], root / "top.safetensors")
    monkeypatch.setattr(lookup, "MAX_FOLDERS", 300)
    assert listing([str(root)]) == ["top.safetensors"]  # the first 300 folders hold no deeper file


def test_missing_name_suggests_close_names(lora_dir):
    with pytest.raises(LoraFileError, match="Closest names: 'a.safetensors'"):
        locate("aa.safetensors", [str(lora_dir / "loras")])
