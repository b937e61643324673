"""Resolving LoRA names from workflows to local files: separators, subfolders, hashes, hostile names."""

from __future__ import annotations

import pytest

from loradeck.core.errors import LoraFileError
from loradeck.core.files.lookup import locate


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


def test_symlink_out_of_root_is_refused(lora_dir, tmp_path):
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(b"x")
    link = lora_dir / "loras" / "link.safetensors"
    link.symlink_to(outside)
    try:
        with pytest.raises(LoraFileError):
            locate("link.safetensors", [str(lora_dir / "loras")])
    finally:
        link.unlink()


def test_missing_name_suggests_close_names(lora_dir):
    with pytest.raises(LoraFileError, match="Closest names: 'a.safetensors'"):
        locate("aa.safetensors", [str(lora_dir / "loras")])
