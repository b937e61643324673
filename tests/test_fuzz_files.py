"""Seeded fuzzing of LoRA files against Deck.add: only LoRA Deck's own errors, no hangs, no half-applied state.

Each class of damage the hostile-input run found (issue 9) gets a few hundred mutated files, made from small valid
files of every layout (``lora_fixtures.fuzz_bases``). Foreign exceptions: header and metadata JSON (deep nesting,
Infinity, huge numbers), wrong-typed metadata and configs, dtypes, scalar and 1-D factors, inconsistent ranks,
renamed/deleted keys, truncation and bit flips (40 each, 320 in all); hangs: strings built to make patterns
backtrack (200); LoKr/Tucker/LoHa resource bombs (200); NaN images: NaN/inf (100) and finite but absurd magnitudes
(120); hostile PEFT configs (30); mutated trainer files on Flux (40) and on each 2026 family's own tiny pipeline
(30 each, over every layout its trainers write). Files whose damage is in what is parsed mostly name modules the
pipeline lacks, so they are refused after every parser ran but before peft (a load into peft costs ~0.1 s).
About 40 s of CPU in all; ``LORADECK_FUZZ_SCALE=10`` runs ten times as many.
Model files (issue 24), built as Load Diffusion Model builds a denoiser: GGUF files truncated, with lying tensor or
metadata counts, shapes, dims, types and offsets, or other values (120), and ComfyUI fp8 files with hostile
comfy_quant / _quantization_metadata JSON, bad scales, dtypes and keys (120): refused naming the file, or loaded
when only values changed.
Every LoRA file is added to one tiny SD pipeline (shared by every kind) that holds a known-good adapter; after each,
the pipeline must be exactly as before (every parameter, so every peft layer; the stack; loaded adapters; peft
configs), and after each kind the known-good file must still render exactly as on a fresh pipeline.
"""

from __future__ import annotations

import json
import os
import random
import struct
import time
from collections import Counter
from collections.abc import Callable

import pytest
import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

import lora_fixtures as fx
from family_fixtures import fresh
from helpers import make_pipe, render
from loradeck.core import Deck, LoraDeckError

SEED = 9
SCALE = float(os.environ.get("LORADECK_FUZZ_SCALE", "1"))  # e.g. 10 for a deeper local run
MAX_SECONDS = 5.0  # per file, on a busy 2-core machine; a hang or a bomb takes minutes
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "trainers")
INTS = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)
FLOATS = (torch.float16, torch.bfloat16, torch.float64, torch.float8_e4m3fn, torch.float8_e5m2)
METADATA_FIELDS = ("ss_tag_frequency", "ss_network_args", "trainedWords", "modelspec.trigger_phrase",
                   "ss_trigger_words", "lora_adapter_metadata", "activation text", "ss_network_dim")

COMPONENTS = ("unet", "text_encoder", "transformer")

Mutation = tuple[dict, dict] | bytes  # (tensors, metadata) to save, or the raw bytes of a file


# -- helpers -------------------------------------------------------------------------------------------------
def _key(rng: random.Random, tensors: dict, parts: tuple[str, ...] = ()) -> str:
    keys = sorted(k for k in tensors if not parts or any(p in k for p in parts)) or sorted(tensors)
    return rng.choice(keys)


def _deep(rng: random.Random) -> str:
    depth = rng.choice((40, 500, 5_000, 200_000))
    opener, closer = rng.choice((("[", "]"), ('{"a":', "}"), ('[{"x":', "}]")))
    return opener * depth + "1" + closer * depth


def _hostile_json(rng: random.Random) -> str:
    return rng.choice((
        lambda: _deep(rng),
        lambda: '{"f": {"tag": Infinity}}', lambda: '{"f": {"tag": -Infinity, "b": NaN}}',
        lambda: '{"f": {"tag": 1e999}}', lambda: '{"f": {"tag": ' + "9" * rng.choice((50, 5000)) + "}}",
        lambda: '["' + "x" * rng.randint(1, 200_000) + '"]', lambda: json.dumps(list(range(rng.randint(1, 50_000)))),
        lambda: '{"algo": ' + _deep(rng) + "}", lambda: "[" + ",".join(['"w"'] * 10_000) + "]",
        lambda: '{"f": {"t": [1, 2]}, "g": null, "h": true}', lambda: "{not json", lambda: '"\\ud800"',
        lambda: json.dumps({"algo": [["lokr"]], "conv_dim": {"a": 1}}), lambda: "[" * 30 + "]" * 30,
    ))()


def _wrong_value(rng: random.Random):
    return rng.choice(("text", "", ["list"], {"a": {"b": 1}}, None, True, False, 0, -0.0, -5, 1e308, 1e7, 3, 2.5,
                       [[[[1]]]], "(a+)+$", 10**30))


# -- mutators: (rng, tensors, metadata) -> Mutation ---------------------------------------------------------
def header_json(rng, tensors, meta) -> Mutation:
    data = safetensors_bytes(tensors, meta or None)
    (length,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8 : 8 + length]), data[8 + length :]
    entry = header[rng.choice(sorted(k for k in header if k != "__metadata__"))]
    choice = rng.randrange(12)
    if choice == 0:
        header["__metadata__"] = rng.choice(([1, 2], "text", 5, {"a": {"b": "c"}}, {"a": 1}, None, {"a": None}))
    elif choice == 1:
        entry["dtype"] = rng.choice(("I64", "BOOL", "F8_E4M3", "XYZ", 123, None, "F64", "C64", ""))
    elif choice == 2:
        entry["shape"] = rng.choice(([-1, 4], [2**62, 2**62], [1.5], [], "4", [[4]], [4, 4, 4, 4, 4, 4], [0, 4]))
    elif choice == 3:
        entry["data_offsets"] = rng.choice(([10, 0], [0, 10**12], [-4, 4], [0.5, 1], "0", [0], None))
    elif choice == 4:
        text = json.dumps(header)
        return _raw(text[:-1] + ', "deep": ' + _deep(rng) + "}", body)
    elif choice == 5:
        text = json.dumps(header).replace('"shape": [', '"shape": [' + rng.choice(("Infinity, ", "NaN, ", "1e999, ")))
        return _raw(text, body)
    elif choice == 6:
        return _raw(json.dumps(header).replace("[", "[" + "9" * rng.choice((30, 5000)) + ", ", 1), body)
    elif choice == 7:
        return _raw(rng.choice(("[]", "null", "1", '"x"', "{}", "{" * 100_000, "\xff\xfe")), body)
    elif choice == 8:
        return _raw(json.dumps(header) + rng.choice(("x", "}", " " * 10, "\x00")), body)
    elif choice == 9:
        header.update({f"extra{i}": dict(entry) for i in range(rng.choice((1, 1, 1, 60_000)))})
    elif choice == 10:
        header["__metadata__"] = {**(header.get("__metadata__") or {}), "nested": _deep(rng)}
    else:
        first = sorted(k for k in header if k != "__metadata__")[0]
        text = json.dumps(header)
        return _raw(text[:-1] + f', "{first}": {json.dumps(entry)}' + "}", body)  # a duplicate key
    return _raw(json.dumps(header), body)


def _raw(header: str, body: bytes) -> bytes:
    encoded = header.encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(encoded)) + encoded + body


def metadata_json(rng, tensors, meta) -> Mutation:
    meta = dict(meta)
    for _ in range(rng.randint(1, 3)):
        meta[rng.choice(METADATA_FIELDS)] = _hostile_json(rng)
    return tensors, meta


def metadata_types(rng, tensors, meta) -> Mutation:
    meta = dict(meta)
    if "lora_adapter_metadata" in meta and rng.random() < 0.7:
        config = json.loads(meta["lora_adapter_metadata"])
        field = rng.choice(("r", "lora_alpha", "alpha_pattern", "rank_pattern", "use_rslora", "use_dora",
                            "fan_in_fan_out", "target_modules", "lora_bias", "layer_replication"))
        component = rng.choice(("unet", "text_encoder"))
        value = _wrong_value(rng)
        if field == "alpha_pattern" and rng.random() < 0.6:
            value = {rng.choice(("(a+)+$", "(.*)*x", "to_q", "", "a" * 600, "x.(?<!y)z", "[", 5)):
                     _wrong_value(rng) for _ in range(rng.randint(1, 3))}
        config[f"{component}.{field}"] = value
        meta["lora_adapter_metadata"] = json.dumps(config)
    else:
        meta[rng.choice(METADATA_FIELDS)] = json.dumps(_wrong_value(rng))
    return tensors, meta


def dtypes(rng, tensors, meta) -> Mutation:
    tensors = dict(tensors)
    for _ in range(rng.randint(1, 3)):
        key = _key(rng, tensors)
        dtype = rng.choice(INTS * 3 + FLOATS + (torch.complex64,))
        tensors[key] = tensors[key].to(dtype)
    return tensors, meta


def shapes(rng, tensors, meta) -> Mutation:
    tensors = dict(tensors)
    key = _key(rng, tensors)
    old = tensors[key] if tensors[key].dim() else tensors[key].reshape(1)
    tensors[key] = rng.choice((
        lambda: torch.tensor(0.5), lambda: torch.randn(old.numel()), lambda: torch.randn(old.shape[0]),
        lambda: torch.randn(*old.shape, 2) if old.dim() < 4 else torch.randn(old.shape[0]),
        lambda: torch.randn(2, 2, 2, 2, 2), lambda: torch.zeros(0, 4), lambda: torch.zeros(4, 0, 3, 3),
        lambda: old.reshape(-1, 1) if old.dim() else torch.randn(1, 1), lambda: old.T if old.dim() == 2 else old[None],
        lambda: torch.randn(3),
    ))()
    return tensors, meta


def ranks(rng, tensors, meta) -> Mutation:
    tensors = dict(tensors)
    key = _key(rng, tensors, ("down", "up", "lora_A", "lora_B", "hada", "lokr", "mid", "dora"))
    old = tensors[key]
    if old.dim() == 0:
        return tensors, meta
    shape = list(old.shape)
    axis = rng.randrange(len(shape))
    shape[axis] = max(1, shape[axis] + rng.choice((-1, 1, 2, shape[axis])))
    tensors[key] = torch.randn(*shape) * 0.1
    return tensors, meta


def bombs(rng, tensors, meta) -> Mutation:
    tensors = dict(tensors)
    module = _key(rng, tensors).split(".")[0]
    if not module.startswith("lora_"):  # diffusers layout: make it a kohya-named module
        module = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    for key in [k for k in tensors if k.startswith(module + ".")]:
        del tensors[key]
    big, rank = rng.choice((300, 200, 64)), rng.choice((20_000, 5_000, 300))
    recipe = rng.randrange(6)
    if recipe == 0:  # two full factors: kron is [big^2, big^2]
        tensors[f"{module}.lokr_w1"], tensors[f"{module}.lokr_w2"] = torch.randn(big, big), torch.randn(big, big)
    elif recipe == 1:  # decomposed factors of a huge rank
        tensors[f"{module}.lokr_w1_a"], tensors[f"{module}.lokr_w1_b"] = torch.randn(4, rank), torch.randn(rank, 4)
        tensors[f"{module}.lokr_w2_a"], tensors[f"{module}.lokr_w2_b"] = torch.randn(4, rank), torch.randn(rank, 4)
    elif recipe == 2:  # Tucker core with a huge kernel
        tensors[f"{module}.lokr_w1"] = torch.randn(4, 4)
        tensors[f"{module}.lokr_w2_a"], tensors[f"{module}.lokr_w2_b"] = torch.randn(2, 4), torch.randn(2, 4)
        tensors[f"{module}.lokr_t2"] = torch.randn(2, 2, big, big)
    elif recipe == 3:  # LoHa of a huge rank: the pair would have rank^2 columns
        for n in (1, 2):
            tensors[f"{module}.hada_w{n}_a"], tensors[f"{module}.hada_w{n}_b"] = torch.randn(16, rank), \
                torch.randn(rank, 16)
    elif recipe == 4:  # LoCon Tucker core with a huge kernel and rank
        tensors[f"{module}.lora_down.weight"] = torch.randn(2, 16, 1, 1)
        tensors[f"{module}.lora_mid.weight"] = torch.randn(rank // 100 + 2, 2, 64, 64)
        tensors[f"{module}.lora_up.weight"] = torch.randn(16, rank // 100 + 2, 1, 1)
    else:  # a module that does not exist, with a huge product
        tensors["lora_unet_nowhere.lokr_w1"], tensors["lora_unet_nowhere.lokr_w2"] = torch.randn(big, big), \
            torch.randn(big, big)
    tensors[f"{module}.alpha"] = torch.tensor(1.0)
    return tensors, meta


def nonfinite(rng, tensors, meta) -> Mutation:
    tensors = dict(tensors)
    key = _key(rng, tensors)
    value = tensors[key].clone().to(rng.choice((torch.float32, torch.float16, torch.bfloat16, torch.float64)))
    flat = value.reshape(-1)
    for _ in range(rng.randint(1, 3)):
        flat[rng.randrange(flat.numel())] = rng.choice((float("nan"), float("inf"), float("-inf")))
    tensors[key] = value
    return tensors, meta


def magnitudes(rng, tensors, meta) -> Mutation:
    tensors = dict(tensors)
    choice = rng.randrange(5)
    if choice == 0:
        alphas = [k for k in tensors if k.endswith("alpha")] or [_key(rng, tensors)]
        key = rng.choice(alphas)
        tensors[key if key.endswith("alpha") else key.rsplit(".", 2)[0] + ".alpha"] = torch.tensor(
            rng.choice((3e38, -3e38, 1e30, 1e-45, 5e-324, 1e300, 1e15)),
            dtype=rng.choice((torch.float32, torch.float64)))
    elif choice == 1:
        key = _key(rng, tensors)
        tensors[key] = tensors[key].float() * rng.choice((1e5, 1e10, 1e19, 1e30, -1e20))
    elif choice == 2:
        for key in [k for k in tensors if not k.endswith("alpha")]:
            tensors[key] = tensors[key].float() * 1e19
    elif choice == 3:
        key = _key(rng, tensors)
        tensors[key] = torch.full_like(tensors[key], 65504.0, dtype=torch.float16)
    else:
        key = _key(rng, tensors)
        tensors[key] = torch.full_like(tensors[key], rng.choice((1e38, 3e38, 1e20)), dtype=torch.float32)
    return tensors, meta


def keys(rng, tensors, meta) -> Mutation:
    tensors = dict(tensors)
    choice = rng.randrange(6)
    if choice == 0:
        for key in rng.sample(sorted(tensors), rng.randint(1, max(1, len(tensors) - 1))):
            del tensors[key]
    elif choice == 1:
        key = _key(rng, tensors)
        tensors[key.replace(rng.choice(("lora_", "down", "up", "_", ".")), rng.choice(("x", "", "..", "lora_")), 1)
                or "x"] = tensors.pop(key)
    elif choice == 2:
        junk = rng.choice(("x" * 600, "a\x00b.lora_down.weight", "lora_unet_\u00e9\u4e2d.lora_down.weight", "....",
                           "x" + ".lora_lora" * 45 + ".-", "lora_unet_" + "_" * 400 + ".alpha", "base_model.model."))
        tensors[junk] = torch.randn(4, 4)
    elif choice == 3:  # the same module under its kohya and diffusers names
        name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
        tensors[f"unet.{name}.lora_A.weight"], tensors[f"unet.{name}.lora_B.weight"] = torch.randn(4, 16), \
            torch.randn(16, 4)
        tensors["lora_unet_" + name.replace(".", "_") + ".lora_down.weight"] = torch.randn(4, 16)
        tensors["lora_unet_" + name.replace(".", "_") + ".lora_up.weight"] = torch.randn(16, 4)
    elif choice == 4:
        tensors = {k.replace("lora_unet_", "lora_te_", 1): v for k, v in tensors.items()}
    else:
        tensors = {"prefix." + k: v for k, v in tensors.items()}
    return (tensors or {"x": torch.zeros(1)}), meta


PATHOLOGICAL = ("(a+)+$", "(a|a)*b", "(.*a){25}", "^(([a-z])+.)+[A-Z]([a-z])+$", "x" * 400 + "(y+)+z", "(?:a*)*$",
                "to_q|" * 200 + "(b+)+$", "\\", "(?<![\\w.])(a+)+")


def redos(rng, tensors, meta) -> Mutation:
    """Strings from the file that a careless pattern would backtrack on for minutes: config pattern keys,
    tensor keys built to defeat a key-suffix pattern, long repeated metadata."""
    tensors, meta = dict(tensors), dict(meta)
    choice = rng.randrange(3)
    if choice == 0:
        config = json.loads(meta.get("lora_adapter_metadata", "{}"))
        field = rng.choice(("alpha_pattern", "rank_pattern"))
        config[f"{rng.choice(('unet', 'text_encoder'))}.{field}"] = {rng.choice(PATHOLOGICAL): rng.choice((3, 8))}
        meta["lora_adapter_metadata"] = json.dumps(config)
    elif choice == 1:
        n = rng.randint(20, 45)
        tensors[rng.choice(("x" + ".lora_lora" * n + ".-", "lora_unet_" + "a_" * 200 + ".lora_down.weight",
                            "." * 400, "base_model.model." + "a." * 150 + "lora_A.weight",
                            "x" + ".processor" * 40 + ".to_q_lora.down.weight", "x" + ".hada_a" * n + ".weight!",
                            "double_blocks." + "1" * 300 + ".processor.qkv_lora1.down.weight"))] = torch.randn(2, 2)
    else:
        meta[rng.choice(METADATA_FIELDS)] = rng.choice(("a," * 200_000, "[" + '"a",' * 50_000 + '"a"]',
                                                        "\\" * 100_000, '"' * 100_000))
    return tensors, meta


def damaged_bytes(rng, tensors, meta) -> Mutation:
    data = bytearray(safetensors_bytes(tensors, meta or None))
    choice = rng.randrange(4)
    if choice == 0:
        return bytes(data[: rng.randrange(len(data))])
    if choice == 1:
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif choice == 2:
        data[:8] = struct.pack("<Q", rng.choice((0, 1, 2**63, len(data), rng.randrange(2**32))))
    else:
        start = rng.randrange(len(data))
        data[start : start + rng.randint(1, 64)] = b"\x00" * len(data[start : start + 64])
    return bytes(data)


# kind -> (mutator, files): the issue's classes are foreign exceptions (the first eight kinds), hangs (redos),
# resource bombs, and values that make NaN images (nonfinite, magnitudes).
KINDS: dict[str, tuple[Callable, int]] = {
    "header_json": (header_json, 40), "metadata_json": (metadata_json, 40), "metadata_types": (metadata_types, 40),
    "dtypes": (dtypes, 40), "shapes": (shapes, 40), "ranks": (ranks, 40), "keys": (keys, 40),
    "bytes": (damaged_bytes, 40), "redos": (redos, 200), "bombs": (bombs, 200), "nonfinite": (nonfinite, 100),
    "magnitudes": (magnitudes, 120),
}
PARSING = ("header_json", "metadata_json", "metadata_types", "bytes", "redos")  # parsed before any module matches


# -- the harness ---------------------------------------------------------------------------------------------
def _write(path: str, mutation: Mutation) -> str:
    if isinstance(mutation, bytes):
        with open(path, "wb") as f:
            f.write(mutation)
        return path
    tensors, meta = mutation
    return fx.write_state(path, tensors, {k: str(v) for k, v in meta.items()})


def _state(deck: Deck) -> tuple:
    """Everything a failed add must leave as it was besides the parameters (whose names cover peft's layers):
    the stack, loaded and active adapters, each component's peft configs."""
    configs = tuple((c, tuple(getattr(getattr(deck.pipe, c), "peft_config", {}) or {})) for c in COMPONENTS
                    if getattr(deck.pipe, c, None) is not None)
    return deck.stack, deck.owner.loaded_keys, tuple(v.name for v in deck.active()), configs


def _parameters(pipe) -> dict[str, torch.Tensor]:
    return {f"{c}.{n}": p for c in COMPONENTS if getattr(pipe, c, None) is not None
            for n, p in getattr(pipe, c).named_parameters()}


def _unchanged(pipe, before: dict[str, tuple]) -> list[str]:
    """Names of parameters added, removed or changed since ``before`` (name -> (parameter, copy, version)); the
    same parameter object with the same in-place version counter is unchanged without comparing values."""
    now = _parameters(pipe)
    return [n for n in before.keys() | now.keys() if n not in now or n not in before or
            not (now[n] is before[n][0] and now[n]._version == before[n][2]) and not torch.equal(now[n], before[n][1])]


def _copies(pipe) -> dict[str, tuple]:
    return {n: (p, p.detach().clone(), p._version) for n, p in _parameters(pipe).items()}


class Outcomes:
    def __init__(self):
        self.counts, self.foreign, self.slowest, self.changed, self.accepted = Counter(), [], (0.0, ""), [], []

    def add(self, deck: Deck, path: str, label: str, before_params, before_state) -> None:
        started = time.perf_counter()
        try:
            deck.add(path, name="fuzz")
            outcome = "accepted"
        except LoraDeckError as exc:
            outcome = type(exc).__name__
        except Exception as exc:  # the defect this test exists to find
            outcome = "FOREIGN"
            self.foreign.append(f"{label}: {type(exc).__name__}: {str(exc)[:200]}")
        elapsed = time.perf_counter() - started
        self.slowest = max(self.slowest, (elapsed, label))
        self.counts[outcome] += 1
        if outcome == "accepted":
            self.accepted.append(label)
            deck.remove("fuzz")
        changed = _unchanged(deck.pipe, before_params)
        if changed or _state(deck) != before_state:
            self.changed.append(f"{label} ({outcome}): {changed[:2]} {_state(deck)[2]}")

    def check(self, kind: str) -> None:
        print(f"{kind}: {dict(self.counts)}; slowest {self.slowest[0]:.2f} s ({self.slowest[1]})")  # noqa: T201
        assert not self.foreign, f"{len(self.foreign)} foreign exceptions, e.g. " + "\n".join(self.foreign[:5])
        assert not self.changed, f"{len(self.changed)} files left the pipeline changed: " + "\n".join(self.changed[:5])
        assert self.slowest[0] < MAX_SECONDS, f"{self.slowest[1]} took {self.slowest[0]:.1f} s"


@pytest.fixture(scope="module")
def known_good(tmp_path_factory):
    """A valid kohya file and the image the tiny SD pipeline renders with it (fresh, never fuzzed)."""
    folder = tmp_path_factory.mktemp("good")
    path = fx.save_kohya_lora(str(folder / "good.safetensors"), seed=4)
    pipe = make_pipe()
    Deck(pipe).add(path, name="good", model=0.8)
    return path, render(pipe, steps=1)


@pytest.fixture(scope="module")
def fuzzed(known_good):
    """The one tiny SD pipeline every kind is fuzzed on, holding the known-good adapter, and the valid files the
    mutations start from (made before the adapter wraps the layers they patch)."""
    pipe = make_pipe()
    bases = fx.fuzz_bases(pipe)
    return Deck(pipe).add(known_good[0], name="good", model=0.8), bases


def _still_exact(deck: Deck, known_good) -> None:
    """The known-good file, read and applied again, renders exactly as on a fresh pipeline."""
    good, good_image = known_good
    deck.remove("good").add(good, name="good", model=0.8)
    assert torch.equal(render(deck.pipe, steps=1), good_image)


@pytest.mark.parametrize("kind", list(KINDS))
def test_mutated_files_raise_only_loradeck_errors_and_change_nothing(kind, tmp_path, fuzzed, known_good):
    deck, bases = fuzzed
    before_params, before_state = _copies(deck.pipe), _state(deck)
    rng, outcomes = random.Random(f"{kind}-{SEED}"), Outcomes()
    torch.manual_seed(SEED)
    mutate, count = KINDS[kind]
    for i in range(round(count * SCALE)):
        layout = rng.choice(sorted(bases))
        tensors, meta = bases[layout]
        if kind in PARSING and rng.random() < 0.95:  # through every parser, then refused short of peft (faster)
            tensors = {k.replace("lora_unet_", "lora_unet_nowhere_").replace("unet.", "unet.nowhere."): v
                       for k, v in tensors.items()}
        label = f"{kind} #{i} on {layout}"
        path = _write(str(tmp_path / f"{i}.safetensors"), mutate(rng, tensors, meta))
        outcomes.add(deck, path, label, before_params, before_state)
    outcomes.check(kind)
    _still_exact(deck, known_good)


def test_peft_folders_with_hostile_configs(tmp_path, fuzzed, known_good):
    """A PEFT folder's adapter_config.json goes through the same bounded parser and config checks."""
    deck = fuzzed[0]
    before_params, before_state, outcomes = _copies(deck.pipe), _state(deck), Outcomes()
    folder = tmp_path / "peft"
    folder.mkdir()
    fx.write_peft(str(folder / "adapter_model.safetensors"), seed=1)
    rng = random.Random(f"peft-{SEED}")
    for i in range(round(30 * SCALE)):
        config = {"r": 4, "lora_alpha": 8, "target_modules": ["to_q"]}
        config[rng.choice(("lora_alpha", "alpha_pattern", "use_rslora", "fan_in_fan_out", "r"))] = _wrong_value(rng)
        text = json.dumps(config) if rng.random() < 0.6 else _hostile_json(rng)
        (folder / "adapter_config.json").write_text(text, encoding="utf-8", errors="surrogatepass")
        outcomes.add(deck, str(folder / "adapter_model.safetensors"), f"peft config #{i}", before_params,
                     before_state)
    outcomes.check("peft folders")
    _still_exact(deck, known_good)


FLUX_FILES = ("flux_kohya_default", "flux_lycoris_lokr_kohya", "flux_xlabs", "flux_aitoolkit")
FLUX_KINDS = ("shapes", "ranks", "bombs", "nonfinite", "magnitudes", "keys", "bytes", "dtypes")
# the 2026 families: every layout their trainers write (tests/fixtures/trainers/<family>/), mutated on their own
# tiny pipeline; the file the pipeline holds while it is fuzzed is the first of the family's list
TRAINER_FAMILIES = ("chroma", "flux2", "krea2", "qwenimage", "zimage")


def _trainer_files(family: str) -> tuple[str, list[str]]:
    if family == "flux":
        return FIXTURES, list(FLUX_FILES)
    folder = os.path.join(FIXTURES, family)
    names = sorted(n[: -len(".safetensors")] for n in os.listdir(folder)
                   if n.endswith(".safetensors") and not n.endswith(".expected.safetensors")
                   and not n.startswith("sdscripts_"))  # Chroma's sd-scripts model, not a LoRA
    return folder, names


@pytest.mark.parametrize("family,count", [("flux", 40), *((f, 30) for f in TRAINER_FAMILIES)])
def test_mutated_trainer_files_on_their_family(family, count, tmp_path):
    folder, names = _trainer_files(family)
    good = "flux_kohya_default" if family == "flux" else names[0]
    pipe = fresh(family)
    deck = Deck(pipe).add(os.path.join(folder, f"{good}.safetensors"), name="good")
    before_params, before_state = _copies(pipe), _state(deck)
    outcomes, rng = Outcomes(), random.Random(f"{family}-{SEED}")
    for i in range(round(count * SCALE)):
        name, kind = rng.choice(names), rng.choice(FLUX_KINDS)
        tensors = load_file(os.path.join(folder, f"{name}.safetensors"))
        path = _write(str(tmp_path / f"{i}.safetensors"), KINDS[kind][0](rng, tensors, {}))
        outcomes.add(deck, path, f"{family} {kind} #{i} on {name}", before_params, before_state)
    outcomes.check(family)


# -- model files (issue 24): GGUF and ComfyUI fp8 denoisers --------------------------------------------------------
MODEL_FILES = os.path.join(os.path.dirname(__file__), "fixtures", "model_files")
# the tensor whose info the shape / n_dims / type / offset mutations change: FLUX.1/.2, SD3, Wan (ComfyUI-GGUF arch
# wan, with its 5-D patch embedding)
GGUF_NAMES = (b"double_blocks.0.img_attn.qkv.weight", b"joint_blocks.0.x_block.attn.qkv.weight",
              b"blocks.0.self_attn.q.weight")


def _u64(data: bytearray, at: int, value: int) -> None:
    data[at: at + 8] = struct.pack("<Q", value % 2**64)


def _info_at(data: bytes, name: bytes | None = None) -> int:
    """Where the tensor info of ``name`` (default: the file's first ``GGUF_NAMES``) starts its n_dims (after the u64
    length and the name)."""
    name = name or next(n for n in GGUF_NAMES if n in data)
    return data.index(name) + len(name)


def gguf_mutation(rng: random.Random, data: bytes, data_offset: int,
                  name: bytes | None = None) -> tuple[str, bytes]:
    out = bytearray(data)
    kind = rng.choice(("truncated", "header bytes", "tensor count", "metadata count", "shape", "n_dims", "type",
                       "offset", "data bytes"))
    if kind == "truncated":
        return kind, data[: rng.randrange(0, len(data))]
    if kind == "header bytes":
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(4, data_offset)] = rng.randrange(256)
    elif kind in ("tensor count", "metadata count"):
        real = struct.unpack_from("<Q", data, 8 if kind == "tensor count" else 16)[0]
        _u64(out, 8 if kind == "tensor count" else 16, rng.choice((real + 1, real - 1, 2**31, 2**40, 2**63, 2**64 - 1)))
    elif kind in ("shape", "n_dims"):
        at = _info_at(data, name)
        if kind == "n_dims":
            out[at: at + 4] = struct.pack("<I", rng.choice((0, 1, 3, 9, 2**31)))
        else:
            _u64(out, at + 4 + 8 * rng.randrange(2), rng.choice((0, 1, 33, 64, 2**20, 2**40, 2**62)))
    elif kind == "type":
        at = _info_at(data, name) + 4 + 16
        out[at: at + 4] = struct.pack("<I", rng.choice((1, 3, 9, 12, 16, 33, 99, 2**31)))
    elif kind == "offset":
        _u64(out, _info_at(data, name) + 4 + 16 + 4, rng.choice((1, 31, 2**20, 2**40, 2**63)))
    else:  # values only: a valid file with other weights, which loads
        for _ in range(8):
            out[rng.randrange(data_offset, len(data))] = rng.randrange(256)
    return kind, bytes(out)


SCALE_KEYS = (".scale_weight", ".weight_scale")


def fp8_mutation(rng: random.Random, tensors: dict, meta: dict) -> tuple[str, Mutation]:
    tensors, meta = dict(tensors), dict(meta)
    quant = sorted(k for k in tensors if k.endswith(".comfy_quant"))
    scales = sorted(k for k in tensors if k.endswith(SCALE_KEYS))
    kind = rng.choice(("comfy_quant", "scale", "metadata", "weight dtype", "keys"))
    if kind == "comfy_quant" and quant:
        text = rng.choice((_hostile_json(rng), json.dumps({"format": _wrong_value(rng)}), '{"format": "int4"}',
                           "[]", '{"format": "float8_e4m3fn", "x": ' + _hostile_json(rng) + "}"))
        raw = text.encode("utf-8", "surrogatepass")[: rng.choice((64, 1024, 4096, 10**6))]
        tensors[rng.choice(quant)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else \
            torch.zeros(0, dtype=torch.uint8)
    elif kind in ("scale", "comfy_quant"):
        tensors[rng.choice(scales)] = rng.choice((
            torch.tensor(0.0), torch.tensor(float("nan")), torch.tensor(float("inf")), torch.tensor(-float("inf")),
            torch.tensor(-1.0), torch.tensor(1e-45), torch.tensor(3e38), torch.ones(3), torch.zeros(0),
            torch.tensor(7), torch.ones(2, 2), torch.tensor(0.5, dtype=torch.float16)))
    elif kind == "metadata":
        meta["_quantization_metadata"] = rng.choice((_hostile_json(rng), json.dumps({"layers": _wrong_value(rng)}),
                                                     json.dumps({"layers": {"double_blocks.0.img_attn.qkv": "fp8"}})))
    elif kind == "weight dtype":
        key = rng.choice(sorted(k for k in tensors if k.endswith(".weight") and tensors[k].dim() == 2))
        tensors[key] = tensors[key].to(torch.float32).to(rng.choice((torch.uint8, torch.float8_e5m2, torch.int8,
                                                                     torch.float32, torch.bool)))
    else:
        del tensors[rng.choice(sorted(tensors))]
    return kind, (tensors, meta)


def _load_denoiser(path: str):
    """The denoiser of a split-layout file, built as Load Diffusion Model builds it (no encoders needed)."""
    from loradeck.core.models.single_file import load_denoiser

    return load_denoiser(path, torch.float32)


def _refused_or_loaded(path: str, label: str, seen: Counter) -> None:
    start = time.monotonic()
    try:
        _load_denoiser(path)
        seen["loaded"] += 1
    except LoraDeckError as exc:
        assert os.path.basename(path) in str(exc), f"{label}: the refusal does not name the file: {exc}"
        seen["refused"] += 1
    except Exception as exc:  # noqa: BLE001 - the point: nothing but LoRA Deck's own errors
        raise AssertionError(f"{label}: {type(exc).__name__}: {exc}") from exc
    assert time.monotonic() - start < MAX_SECONDS, f"{label} took {time.monotonic() - start:.1f} s"


def test_mutated_gguf_denoisers_are_refused_naming_the_file(tmp_path):
    """Truncated GGUFs, lying tensor and metadata counts, shapes, dims, types and offsets: a refusal that names the
    file (or, for changed values only, a load), never a foreign exception, a hang or an allocation beyond the file."""
    import resource

    from loradeck.core.models.quantized.gguf import read_gguf

    rng, seen, kinds = random.Random(f"gguf-{SEED}"), Counter(), Counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name in ("flux_tiny-Q4_0.gguf", "flux_tiny-Q8_0.gguf", "flux_tiny-BF16.gguf", "flux2_tiny-Q4_0.gguf",
                 "sd3_tiny-Q8_0.gguf", "wan_tiny-Q4_0.gguf", "wan_tiny-Q8_0.gguf"):
        with open(os.path.join(MODEL_FILES, name), "rb") as f:
            data = f.read()
        data_offset = read_gguf(os.path.join(MODEL_FILES, name)).data_offset
        for i in range(round(40 * SCALE)):
            kind, mutated = gguf_mutation(rng, data, data_offset)
            kinds[kind] += 1
            path = tmp_path / f"{name[:-5]}-{i}.gguf"
            path.write_bytes(mutated)
            _refused_or_loaded(str(path), f"{kind} #{i} of {name}", seen)
    assert seen["refused"] > seen["loaded"] > 0 and len(kinds) == 9, (seen, kinds)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak  # KiB
    assert grown < 512 * 1024, f"peak memory grew by {grown // 1024} MiB on files of a few hundred KiB"


# each family's own split files: (GGUF fixtures, the quantized tensor the mutations aim at, the bf16 fixture and
# the key prefixes its fp8 variants quantize)
FAMILY_GGUF = {"qwenimage": (("qwenimage_tiny-Q4_0.gguf", "qwenimage_tiny-Q8_0.gguf"),
                             b"transformer_blocks.0.attn.to_q.weight", "qwenimage_tiny_bf16.safetensors",
                             ("transformer_blocks.",)),
               "krea2": (("krea2_tiny-Q4_0.gguf", "krea2_tiny-Q8_0.gguf"), b"blocks.0.attn.wq.weight",
                         "krea2_tiny_bf16.safetensors", ("blocks.", "txtfusion.")),
               "kandinsky5": (("kandinsky5_tiny-Q4_0.gguf", "kandinsky5_tiny-Q8_0.gguf"),
                              b"visual_transformer_blocks.0.self_attention.to_query.weight",
                              "kandinsky5_tiny_bf16.safetensors",
                              ("text_transformer_blocks.", "visual_transformer_blocks.")),
               "hidream": (("hidream_tiny-Q4_0.gguf", "hidream_tiny-Q8_0.gguf"),
                           b"double_stream_blocks.0.block.ff_i.experts.0.w1.weight", "hidream_tiny_bf16.safetensors",
                           ("double_stream_blocks.", "single_stream_blocks.")),
               "lumina2": (("lumina2_tiny-Q4_0.gguf", "lumina2_tiny-Q8_0.gguf"), b"layers.0.attention.qkv.weight",
                           "lumina2_tiny_bf16.safetensors", ("layers.", "noise_refiner.", "context_refiner.")),
               "auraflow": (("auraflow_tiny-Q4_0.gguf", "auraflow_tiny-Q8_0.gguf"), b"double_layers.0.attn.w2q.weight",
                            "auraflow_tiny_bf16.safetensors", ("double_layers.", "single_layers.")),
               "ernieimage": (("ernieimage_tiny-Q4_0.gguf", "ernieimage_tiny-Q8_0.gguf"),
                              b"layers.0.self_attention.to_q.weight", "ernieimage_tiny_bf16.safetensors", ("layers.",))}
# (Sana's GGUF fixtures are of a width whose heads only a config folder gives: test_model_files_sana.py mutates them)


@pytest.mark.parametrize("family", list(FAMILY_GGUF))
def test_mutated_family_gguf_and_fp8_denoisers_are_refused_naming_the_file(family, tmp_path):
    """The same mutations on a family's own GGUF fixtures, and the fp8 ones on its bf16 fixture in ComfyUI's two
    scaled layouts: a refusal naming the file or a load, never a foreign exception."""
    from test_model_files import _scaled_fp8

    from loradeck.core.models.quantized.gguf import read_gguf

    names, target, bf16, blocks = FAMILY_GGUF[family]
    rng, seen, kinds = random.Random(f"{family}-gguf-{SEED}"), Counter(), Counter()
    for name in names:
        with open(os.path.join(MODEL_FILES, name), "rb") as f:
            data = f.read()
        data_offset = read_gguf(os.path.join(MODEL_FILES, name)).data_offset
        for i in range(round(20 * SCALE)):
            kind, mutated = gguf_mutation(rng, data, data_offset, target)
            kinds[kind] += 1
            path = tmp_path / f"{name[:-5]}-{i}.gguf"
            path.write_bytes(mutated)
            _refused_or_loaded(str(path), f"{kind} #{i} of {name}", seen)
    assert seen["refused"] > seen["loaded"] > 0, (seen, kinds)
    source, seen = load_file(os.path.join(MODEL_FILES, bf16)), Counter()
    for fmt in ("scaled", "comfy_quant"):
        tensors = _scaled_fp8(source, blocks, fmt)
        for i in range(round(20 * SCALE)):
            kind, mutation = fp8_mutation(rng, tensors, {})
            path = _write(str(tmp_path / f"{family}-{fmt}-{i}.safetensors"), mutation)
            _refused_or_loaded(path, f"{kind} #{i} of {family} {fmt}", seen)
    assert seen["refused"] > 0, seen


def test_mutated_comfyui_fp8_denoisers_are_refused_naming_the_file(tmp_path):
    """Hostile comfy_quant JSON and _quantization_metadata, scales of 0, NaN, inf, negative or with more than one
    value, weights of other dtypes, missing keys: refused naming the file, or loaded when harmless."""
    rng, seen, kinds = random.Random(f"fp8-{SEED}"), Counter(), Counter()
    for name in ("flux_tiny_fp8_e4m3fn_scaled.safetensors", "flux_tiny_fp8_e4m3fn_mixed.safetensors",
                 "flux_tiny_fp8_e4m3fn_metadata.safetensors"):
        from safetensors import safe_open

        with safe_open(os.path.join(MODEL_FILES, name), "pt") as f:
            tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
        for i in range(round(40 * SCALE)):
            kind, mutation = fp8_mutation(rng, tensors, meta)
            kinds[kind] += 1
            path = _write(str(tmp_path / f"{name[:-12]}-{i}.safetensors"), mutation)
            _refused_or_loaded(path, f"{kind} #{i} of {name}", seen)
    assert seen["refused"] > seen["loaded"] > 0 and len(kinds) == 5, (seen, kinds)
