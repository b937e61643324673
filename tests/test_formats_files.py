"""File safety for real-world downloads: pickle opt-in only with weights_only, bounded headers, in-memory tensors."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import lora_fixtures as fx
from helpers import assert_bit_identical, base_weights, make_pipe, runtime_for
from loradeck.core import Deck, LoraFileError, Settings
from loradeck.core.files.reading import MAX_TENSORS, read_lora_file, read_metadata

ALLOW_PICKLE_ENV = "LORADECK_ALLOW_PICKLE"


class _Payload:
    """Unpickling this creates ``marker`` (what a malicious checkpoint would do, harmlessly)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payload_file(tmp_path, suffix: str = ".pt") -> tuple[str, str]:
    marker = str(tmp_path / "marker")
    path = str(tmp_path / f"evil{suffix}")
    torch.save({"lora_unet_x.lora_down.weight": torch.zeros(2, 2), "payload": _Payload(marker)}, path)
    return path, marker


def _kohya_pickle(tmp_path) -> str:
    from safetensors.torch import load_file

    source = fx.write_kohya_locon(str(tmp_path / "src.safetensors"), seed=3)
    path = str(tmp_path / "locon.pt")
    torch.save(load_file(source), path)
    return path


def test_payload_really_runs_code_without_weights_only(tmp_path):
    """The fixture is a real exploit: a plain torch.load with the env override executes it."""
    path, marker = _payload_file(tmp_path)
    code = f"import torch; torch.load({path!r})"
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    subprocess.run([sys.executable, "-c", code], env=env, check=False, capture_output=True, timeout=300)
    assert os.path.exists(marker)


@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".bin", ".pth"])
def test_pickle_is_refused_by_default_with_how_to_convert(tmp_path, suffix):
    path, marker = _payload_file(tmp_path, suffix)
    with pytest.raises(LoraFileError, match="is a pickle file") as caught:
        read_lora_file(path)
    assert f"evil{suffix}" in str(caught.value) and "safetensors" in str(caught.value)
    assert ALLOW_PICKLE_ENV in str(caught.value)
    assert not os.path.exists(marker)


@pytest.mark.parametrize("opt_in", ["env", "argument"])
def test_opted_in_pickle_never_runs_code_even_when_torch_is_told_to(tmp_path, monkeypatch, opt_in):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    allow = Settings.from_env({ALLOW_PICKLE_ENV: "1"}).allow_pickle if opt_in == "env" else True
    path, marker = _payload_file(tmp_path)
    with pytest.raises(LoraFileError, match="cannot be read as weights only") as caught:
        read_lora_file(path, allow_pickle=allow)
    assert "evil.pt" in str(caught.value)
    assert not os.path.exists(marker)


def test_a_pickle_named_safetensors_is_never_unpickled(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    path, marker = _payload_file(tmp_path)
    disguised = str(tmp_path / "evil.safetensors")
    os.rename(path, disguised)
    with pytest.raises(LoraFileError, match="evil.safetensors"):
        read_lora_file(disguised, allow_pickle=True)
    assert not os.path.exists(marker)


def test_opted_in_pickle_lora_applies_like_its_safetensors_twin(tmp_path, use_models):
    use_models(None, allow_pickle=True)
    path = _kohya_pickle(tmp_path)
    pipe, twin = make_pipe(), make_pipe()
    original = base_weights(pipe)
    deck = Deck(pipe).add(path, name="pt").fuse()
    assert deck.owner.prepare(path).report.matched > 10
    Deck(twin).add(str(tmp_path / "src.safetensors")).fuse()
    fused, twin_fused = base_weights(pipe), base_weights(twin)
    assert all(torch.equal(fused[k], twin_fused[k]) for k in fused)
    assert any(not torch.equal(fused[k], original[k]) for k in fused)
    with pytest.raises(LoraFileError, match="pickle"):  # a runtime without the opt-in never reads it
        Deck(make_pipe(), runtime=runtime_for()).add(path)


def test_pickle_that_is_not_a_state_dict_is_refused(tmp_path):
    path = str(tmp_path / "list.pt")
    torch.save([torch.zeros(2)], path)
    with pytest.raises(LoraFileError, match="flat name -> tensor"):
        read_lora_file(path, allow_pickle=True)


def test_tensor_count_is_bounded_before_parsing(tmp_path):
    header = {f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
              for i in range(MAX_TENSORS + 1)}
    raw = json.dumps(header).encode()
    path = tmp_path / "many.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4 * (MAX_TENSORS + 1))
    with pytest.raises(LoraFileError, match=f"limit {MAX_TENSORS}"):
        read_lora_file(str(path))


def test_metadata_reads_only_the_header(tmp_path):
    path = fx.write_loha(str(tmp_path / "loha.safetensors"), seed=1)
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    with open(path, "wb") as f:
        f.write(data[: 8 + length + 16])  # tensor data cut off
    assert read_metadata(path)["ss_network_module"] == "lycoris.kohya"
    with pytest.raises(LoraFileError, match="corrupt"):
        read_lora_file(path)


def test_truncating_a_file_after_load_does_not_crash_the_process(tmp_path):
    path = fx.write_loha(str(tmp_path / "loha.safetensors"), seed=2)
    script = textwrap.dedent(f"""
        import os
        from loradeck.core.files.reading import read_lora_file
        from loradeck.core.formats import convert
        from loradeck.core.families.sd1 import FAMILY as SD1
        _, lora = read_lora_file({path!r})
        os.truncate({path!r}, 0)
        total = sum(float(t.float().abs().sum()) for t in lora.tensors.values())
        converted = convert({path!r}, lora.tensors, lora.metadata, SD1)
        print(total > 0, converted.total)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "True" and int(done.stdout.split()[1]) > 10


def test_failed_pickle_load_leaves_the_pipeline_bit_identical(tmp_path, use_models):
    use_models(None, allow_pickle=True)
    path, marker = _payload_file(tmp_path)
    pipe = make_pipe()
    before = base_weights(pipe)
    with pytest.raises(LoraFileError):
        Deck(pipe).add(path)
    assert_bit_identical(before, base_weights(pipe))
    assert not os.path.exists(marker)
