"""The trust boundary: bounded JSON for headers and metadata, and every tensor checked before any converter."""

from __future__ import annotations

import json
import struct
import time

import pytest
import torch
from safetensors.torch import load_file

import lora_fixtures as fx
from loradeck.core.errors import LoraFileError
from loradeck.core.files.checks import MAX_KEY_CHARS, check_tensors, part_of
from loradeck.core.files.metadata import parse_metadata
from loradeck.core.files.reading import read_lora_file, read_metadata
from loradeck.core.files.safe_json import UntrustedJsonError, loads, shape_of
from loradeck.core.files.sources import in_memory

DOWN, UP = "lora_unet_a.lora_down.weight", "lora_unet_a.lora_up.weight"


# -- bounded JSON -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,problem", [
    ("[" * 100_000 + "]" * 100_000, "levels deep"), ('{"a": ' * 40 + "1" + "}" * 40, "levels deep"),
    ('{"n": Infinity}', "Infinity"), ('[-Infinity]', "Infinity"), ('{"n": NaN}', "NaN"), ("1e999", "beyond float"),
    ("9" * 5000, "not valid JSON"), ("{bad", "not valid JSON"), ("[" + "1," * 200 + "1]", "items"),
])
def test_hostile_json_is_refused_fast_with_the_reason(text, problem):
    started = time.perf_counter()
    with pytest.raises(UntrustedJsonError, match=problem):
        loads(text, max_items=100)
    assert time.perf_counter() - started < 2


def test_depth_counts_brackets_outside_strings_only():
    assert shape_of(b'{"a": "[[[{{{\\\\", "b": ["\\"]]]", [1]]}')[0] == 3
    assert loads(json.dumps({"a": "[" * 41}), max_depth=1) == {"a": "[" * 41}
    assert loads(json.dumps({"ss": {"tag": 3}, "x": [1.5, -2, None, True]})) == {"ss": {"tag": 3},
                                                                                  "x": [1.5, -2, None, True]}


@pytest.mark.parametrize("field,value", [
    ("ss_tag_frequency", "[" * 200_000), ("ss_tag_frequency", '{"f": {"tag": Infinity}}'),
    ("ss_tag_frequency", '{"f": {"tag": 1e999, "b": 10}}'), ("ss_tag_frequency", '{"f": [1, 2]}'),
    ("ss_network_args", '{"algo": ' + "[" * 100_000 + "]" * 100_000 + "}"), ("ss_network_args", '{"algo": [1]}'),
    ("trainedWords", "[" * 100_000), ("trainedWords", '[[["deep"]], {"a": 1}, 5, "ok"]'),
    ("modelspec.trigger_phrase", "x" * 5_000_000),
])
def test_metadata_fields_that_cannot_be_read_are_skipped_never_raised(field, value):
    meta = parse_metadata({field: value, "ss_output_name": "fine"})
    assert meta.title == "fine" and all(len(w) <= 100 for w in meta.trigger_words)


# -- the safetensors header ---------------------------------------------------------------------------------
def _raw_file(tmp_path, header: str, name: str = "h.safetensors") -> str:
    return fx.write_raw_safetensors(str(tmp_path / name), header.encode(), b"\x00" * 64)


@pytest.mark.parametrize("header,problem", [
    ('{"__metadata__": [1, 2]}', "does not map text to text"), ('{"__metadata__": {"a": 1}}', "text to text"),
    ('{"__metadata__": {"a": {"b": "c"}}}', "text to text"), ('{"__metadata__": {"a": "' + "[" * 99 + '"}}', None),
    ("[" * 500_000, "levels deep"), ('{"w": {"shape": [Infinity]}}', "Infinity"), ("[]", "not a JSON object"),
])
def test_header_problems_are_named(tmp_path, header, problem):
    path = _raw_file(tmp_path, header)
    if problem is None:
        assert read_metadata(path) == {"a": "[" * 99}
        return
    with pytest.raises(LoraFileError, match=problem):
        read_metadata(path)
    with pytest.raises(LoraFileError, match=problem):
        read_lora_file(path)


# -- tensors -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.int8, torch.int64, torch.uint8, torch.bool, torch.complex64])
def test_non_float_tensors_are_refused_with_the_key_named(tmp_path, dtype):
    sd = {DOWN: torch.ones(4, 8).to(dtype), UP: torch.ones(8, 4)}
    path = fx.write_state(str(tmp_path / "ints.safetensors"), sd)
    with pytest.raises(LoraFileError, match=f"holds '{DOWN}' as .*not floating point"):
        read_lora_file(path)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_float8_is_widened_exactly(tmp_path, dtype):
    value = (torch.randn(4, 8) * 3).to(dtype)
    path = fx.write_state(str(tmp_path / "fp8.safetensors"), {DOWN: value, UP: torch.ones(8, 4)})
    _, lora = read_lora_file(path)
    assert lora.tensors[DOWN].dtype == torch.bfloat16
    assert torch.equal(lora.tensors[DOWN].float(), value.float())


def test_an_integer_alpha_is_still_an_alpha():
    checked = check_tensors("x", {"lora_unet_a.alpha": torch.tensor(8), DOWN: torch.ones(4, 8)})
    assert checked["lora_unet_a.alpha"].dtype == torch.float64 and float(checked["lora_unet_a.alpha"]) == 8.0


@pytest.mark.parametrize("key,tensor,problem", [
    (DOWN, torch.tensor(1.0), "a lora_down is 2-D or 4-D"), (UP, torch.ones(8), "a lora_up is 2-D or 4-D"),
    ("lora_unet_a.lora_mid.weight", torch.ones(4, 4), "a lora_mid is 4-D"),
    ("lora_unet_a.dora_scale", torch.tensor(1.0), "a dora_scale is"),
    ("lora_unet_a.alpha", torch.ones(2), "an alpha is one number"),
    ("lora_unet_a.hada_w1_a", torch.ones(2, 2, 2), "a hada_w1_a is"), ("lora_unet_a.lokr_w1", torch.ones(2, 2, 1, 1),
                                                                      "a lokr_w1 is 2-D"),
    (DOWN, torch.ones(0, 8), "empty dimension"), (DOWN, torch.full((4, 8), float("nan")), "NaN"),
    (DOWN, torch.full((4, 8), float("inf"), dtype=torch.float16), "NaN or infinite"),
    ("k" * (MAX_KEY_CHARS + 1), torch.ones(2), "not a name of 1 to"),
])
def test_each_part_has_the_dimensions_trainers_write(key, tensor, problem):
    with pytest.raises(LoraFileError, match=problem):
        check_tensors("x.safetensors", {key: tensor})


def test_parts_are_named_by_their_last_name_part():
    assert part_of("lora_unet_x.lora_down.weight") == "lora_down"
    assert part_of("base_model.model.a.lora_A.default.weight") == "lora_A"
    assert part_of("a.processor.to_q_lora.down.weight") == "down" and part_of("x.alpha") == "alpha"


def test_in_memory_dicts_pass_the_same_boundary():
    with pytest.raises(LoraFileError, match="not floating point"):
        in_memory({DOWN: torch.ones(4, 8, dtype=torch.int32), UP: torch.ones(8, 4)})
    shared = torch.randn(12, 8)
    lora = in_memory({DOWN: shared[:4], UP: shared[4:].T.contiguous()})  # views of one tensor hash fine
    assert len(lora.sha256) == 64


def test_a_file_truncated_inside_its_header_length_is_refused(tmp_path, files):
    with open(files["k"], "rb") as f:
        data = f.read()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(struct.pack("<Q", 2**63) + data[8:])
    with pytest.raises(LoraFileError, match="header"):
        read_lora_file(str(path))
    assert load_file(files["k"])  # the original is untouched


# -- the tensors of a .safetensors file: views of the bytes read, each header entry checked first ------------------
def _entry(dtype="F16", shape=(2, 2), offsets=(0, 8)) -> dict:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize("entries,data,problem", [
    ({DOWN: _entry(dtype="F4")}, 8, "dtype 'F4' is not one LoRA Deck reads"),
    ({DOWN: _entry(dtype=7)}, 8, "dtype '7' is not one"),
    ({DOWN: {"dtype": "F16", "shape": [2, 2]}}, 8, r"not a \{dtype, shape, data_offsets\} object"),
    ({DOWN: _entry(shape=(2, -2))}, 8, "is not a list of at most 8 sizes"),
    ({DOWN: _entry(shape=[1] * 9)}, 8, "is not a list of at most 8 sizes"),
    ({DOWN: _entry(shape=(2, 2.0))}, 8, "is not a list of at most 8 sizes"),
    ({DOWN: _entry(offsets=(0, 6))}, 8, r"data_offsets \[0, 6\] do not hold 4 F16 values"),
    ({DOWN: _entry(offsets=(0, 8))}, 6, r"data_offsets \[0, 8\] do not hold 4 F16 values within the 6 data bytes"),
    ({DOWN: _entry(offsets=(8, 0))}, 8, "do not hold"),
    ({DOWN: _entry(offsets=(0,))}, 8, r"data_offsets is not \[start, end\]"),
    ({DOWN: _entry(), UP: _entry(offsets=(4, 12))}, 12, "overlaps the one before it"),
    ({DOWN: _entry(), UP: _entry(offsets=(12, 20))}, 20, "leaves bytes 8-12 unused"),
    ({DOWN: _entry()}, 12, "its tensors hold 8 of the 12 data bytes"),
    ({DOWN: _entry(shape=(1 << 39, 1 << 39), offsets=(0, 8))}, 8, "do not hold"),
])
def test_a_header_entry_that_breaks_the_format_is_refused_naming_it(tmp_path, entries, data, problem):
    path = fx.write_raw_safetensors(str(tmp_path / "bad.safetensors"), json.dumps(entries).encode(),
                                    b"\x00" * data)
    with pytest.raises(LoraFileError, match=f"is corrupt \\(.*{problem}"):
        read_lora_file(path)


def test_tensors_are_the_files_values_and_a_misaligned_one_is_copied(tmp_path):
    """Each tensor equals what safetensors itself reads from the file; a float32 value at an offset that is not
    a multiple of 4 (possible in a hand-written file) is still read exactly."""
    down, up, alpha = torch.randn(4, 8, dtype=torch.float16), torch.randn(8, 4), torch.tensor(3.0, dtype=torch.float16)
    entries = {"a.alpha": _entry(shape=(), offsets=(0, 2)), DOWN: _entry(shape=(4, 8), offsets=(2, 66)),
               UP: _entry("F32", (8, 4), (66, 194))}
    header = json.dumps(entries).encode()
    header += b" " * (-len(header) % 8)
    data = alpha.numpy().tobytes() + down.numpy().tobytes() + up.numpy().tobytes()
    path = fx.write_raw_safetensors(str(tmp_path / "odd.safetensors"), header, data)
    _, lora = read_lora_file(path)
    assert torch.equal(lora.tensors[DOWN], down) and torch.equal(lora.tensors[UP], up)
    assert lora.tensors["a.alpha"].item() == 3.0
    assert (8 + len(header) + 66) % 4 and lora.tensors[UP].data_ptr() % 4 == 0  # misaligned in the file, not here
    reference = load_file(path)
    assert all(torch.equal(lora.tensors[k].to(v.dtype), v) for k, v in reference.items())


def test_a_file_that_changes_size_while_it_is_read_is_refused(tmp_path, monkeypatch):
    from loradeck.core.files import reading

    path = fx.write_state(str(tmp_path / "growing.safetensors"), {DOWN: torch.ones(4, 8), UP: torch.ones(8, 4)})
    real = reading.stamp

    def stale(p):  # the size seen before the read: 16 bytes less than what is on disk when it is read
        found = real(p)
        return reading.FileStamp(found.path, found.size - 16, found.mtime_ns)

    monkeypatch.setattr(reading, "stamp", stale)
    with pytest.raises(LoraFileError, match="changed while it was read.*completely written"):
        read_lora_file(path)
