"""Reading LoRA files safely, and the adapter store that keeps them (one read per content, by stamp)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from loradeck.core.errors import LoraFileError
from loradeck.core.files.hashing import HashIndex
from loradeck.core.files.reading import read_lora_file, read_metadata
from loradeck.core.files.sources import in_memory
from loradeck.core.files.store import AdapterStore


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


def test_store_reads_each_file_once_and_rereads_when_it_changes(files, tmp_path):
    store = AdapterStore(10**9, HashIndex())
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(Path(files["a"]).read_bytes())
    first = store.sha256(str(copy))
    store.read(str(copy))
    assert store.reads == 1
    copy.write_bytes(Path(files["k"]).read_bytes())
    os.utime(copy, ns=(1, 1))
    assert store.sha256(str(copy)) != first
    assert store.reads == 2


def test_the_same_content_at_two_paths_is_read_once_and_reported_under_each_path(files, tmp_path):
    store = AdapterStore(10**9, HashIndex())
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    one.write_bytes(Path(files["a"]).read_bytes())
    two.write_bytes(Path(files["a"]).read_bytes())
    assert store.read(str(one)).path == str(one)
    assert store.hashes.sha256(str(two)) == store.sha256(str(one))  # hashed by a name lookup, say
    assert store.read(str(two)).path == str(two) and store.reads == 1


def test_store_budget_drops_the_least_recently_used(files):
    store = AdapterStore(10**9, HashIndex())
    for name in ("a", "k", "b"):
        store.read(files[name])
    store.budget_bytes = store.nbytes - 1  # the next new entry needs room
    store.read(files["a"])  # a becomes the most recently used: k is now the oldest
    store.add_file(in_memory({"x.lora_A.weight": torch.ones(1, 1), "x.lora_B.weight": torch.ones(1, 1)}))
    reads = store.reads
    store.read(files["a"])
    store.read(files["b"])
    assert store.reads == reads  # a and b stayed
    store.read(files["k"])
    assert store.reads == reads + 1 and store.nbytes <= store.budget_bytes  # k had gone


def test_tensors_are_in_memory_not_mapped(files, tmp_path):
    copy = tmp_path / "mapped.safetensors"
    copy.write_bytes(Path(files["a"]).read_bytes())
    _, lora = read_lora_file(str(copy))
    copy.write_bytes(b"")  # truncating the file must not affect tensors already read
    original = load_file(files["a"])
    assert all(torch.equal(lora.tensors[k], original[k]) for k in original)
