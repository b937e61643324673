"""Reading files safely and resolving names from workflows."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from loradeck.core.errors import LoraFileError, SpecError
from loradeck.core.families import SD1
from loradeck.core.files import FileCache, read_lora_file, read_metadata
from loradeck.core.names import resolve_lora
from loradeck.core.weights_text import parse


def _write(path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


@pytest.mark.parametrize("name,data,message", [
    ("empty.safetensors", b"", "too short"),
    ("huge_header.safetensors", struct.pack("<Q", 10**12) + b"{}", "header"),
    ("short.safetensors", struct.pack("<Q", 500) + b"{}", "declares a 500-byte header"),
    ("garbage.safetensors", struct.pack("<Q", 4) + b"nope", "unreadable header"),
    ("truncated.safetensors", struct.pack("<Q", 62) +
     b'{"w":{"dtype":"F32","shape":[64,64],"data_offsets":[0,16384]}}', "corrupt"),
    ("model.ckpt", b"PK\x03\x04", "pickle"),
    ("notes.txt", b"hello", "not a .safetensors"),
])
def test_broken_files_give_clear_errors(tmp_path, name, data, message):
    path = _write(tmp_path / name, data)
    with pytest.raises(LoraFileError, match=message) as err:
        read_lora_file(path)
    assert name in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(LoraFileError, match="not found"):
        read_lora_file(str(tmp_path / "nope.safetensors"))


def test_metadata_is_read_from_the_header_only(files):
    assert read_metadata(files["k"])["ss_base_model_version"] == "sd_v1"


def test_cache_reads_each_file_once_and_rereads_when_it_changes(files, tmp_path):
    cache = FileCache(budget_bytes=10**9)
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(Path(files["a"]).read_bytes())
    first = cache.sha256(str(copy))
    cache.get(str(copy))
    assert cache.reads == 1
    copy.write_bytes(Path(files["k"]).read_bytes())
    os.utime(copy, ns=(1, 1))
    assert cache.sha256(str(copy)) != first
    assert cache.reads == 2


def test_tensors_are_in_memory_not_mapped(files, tmp_path):
    copy = tmp_path / "mapped.safetensors"
    copy.write_bytes(Path(files["a"]).read_bytes())
    lora = read_lora_file(str(copy))
    copy.write_bytes(b"")  # truncating the file must not affect tensors already read
    assert all(t.float().abs().sum() >= 0 for t in lora.tensors.values())


def test_name_resolution(lora_dir):
    roots = [str(lora_dir / "loras")]
    known = ["a.safetensors", "k.safetensors", "sub/b.safetensors"]
    assert resolve_lora("sub/b.safetensors", roots, known).endswith("sub/b.safetensors")
    assert resolve_lora("sub\\b.safetensors", roots, known).endswith("sub/b.safetensors")
    assert resolve_lora("other/place/b.safetensors", roots, known).endswith("sub/b.safetensors")


@pytest.mark.parametrize("name", ["../outside.safetensors", "/etc/passwd", "../../x.safetensors",
                                  "a.ckpt", "sub", "", "user/repo"])
def test_hostile_or_wrong_names_never_escape(lora_dir, name):
    roots = [str(lora_dir / "loras")]
    with pytest.raises(LoraFileError):
        resolve_lora(name, roots, ["a.safetensors"])


def test_symlink_out_of_root_is_refused(lora_dir, tmp_path):
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(b"x")
    link = lora_dir / "loras" / "link.safetensors"
    link.symlink_to(outside)
    try:
        with pytest.raises(LoraFileError):
            resolve_lora("link.safetensors", [str(lora_dir / "loras")], ["link.safetensors"])
    finally:
        link.unlink()


def test_missing_name_suggests_close_names(lora_dir):
    with pytest.raises(LoraFileError, match="Closest names: 'a.safetensors'"):
        resolve_lora("aa.safetensors", [str(lora_dir / "loras")], ["a.safetensors", "zzz.safetensors"])


def test_weights_text_forms():
    lines = parse("# comment\nstyle: 0.8\n\ndetail: model=0.6, clip=0.3\n"
                  "x: unet=0.5, text_encoder=0.1\nold: off\n\"odd: name\": 1", SD1)
    assert [(ln.name, dict(ln.weights), ln.enabled) for ln in lines] == [
        ("style", {"model": 0.8, "clip": 0.8}, None),
        ("detail", {"model": 0.6, "clip": 0.3}, None),
        ("x", {"unet": 0.5, "text_encoder": 0.1}, None),
        ("old", {}, False),
        ("odd: name", {"model": 1.0, "clip": 1.0}, None),
    ]


@pytest.mark.parametrize("text,message", [
    ("style 0.8", "line 1: expected 'adapter name: weight'"),
    ("\nstyle: lots", "line 2: 'lots' is not a number"),
    ("style: text_encoder_2=0.5", "line 1: 'text_encoder_2=0.5' should be one of model, clip, unet, text_encoder"),
    ("style: lbw=1,0,1", "line 1: lbw: Stable Diffusion 1.x/2.x takes 17 or 26 values"),
    ("style: up.block_1=[0.4,x]", "line 1, up.block_1: 'x' is not a number"),
    ("style: nan", "line 1"),
    ("style: 1e9", "finite number within"),
])
def test_weights_text_errors_name_the_line(text, message):
    with pytest.raises(SpecError, match=message):
        parse(text, SD1)
