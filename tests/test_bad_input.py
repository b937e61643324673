"""Each class of bad input from issue 9: half-applied stacks, ReDoS, resource bombs, finite values that make NaN
images, hostile names on every entry point, and memory freed on remove."""

from __future__ import annotations

import contextvars
import json
import os
import shutil
import threading
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

import lora_fixtures as fx
from helpers import assert_bit_identical, base_weights, make_pipe, render
from loradeck.core import Deck, GenerateParams, LoraFileError, SpecError, errors, generate
from loradeck.core.adapters import owner as owner_module
from loradeck.core.api import PipelineHandle
from loradeck.core.formats import lowrank
from loradeck.nodes import NODE_CLASS_MAPPINGS, host
from loradeck.runner import WorkflowError, run_workflow
from loradeck.runner.workflow_file import from_data

UNUSABLE = "not a usable LoRA name"
TO_Q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"  # a 16 x 16 linear layer of the tiny UNet


def _kohya(name: str = TO_Q) -> str:
    return "lora_unet_" + name.replace(".", "_")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _layers(pipe) -> list[str]:
    return sorted(n for c in ("unet", "text_encoder") for n, _ in getattr(pipe, c).named_modules() if "lora" in n)


# -- half-applied -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("failure", [ZeroDivisionError("alpha 0"), KeyboardInterrupt()])
def test_a_failure_after_the_weights_changed_returns_to_the_last_stack_bit_for_bit(files, monkeypatch, failure):
    pipe = make_pipe()
    deck = Deck(pipe).add(files["k"], name="k", model=0.7)
    before, image, layers, snapshot = base_weights(pipe), render(pipe, steps=2), _layers(pipe), deck.owner.snapshot
    real = owner_module.read_snapshot

    def fails_after_reconcile(owner, stack, reports, *source):  # source, source_title: the panel's branch labels
        if any(a.name == "a" for a in stack.adapters):
            raise failure
        return real(owner, stack, reports, *source)

    monkeypatch.setattr(owner_module, "read_snapshot", fails_after_reconcile)
    with pytest.raises(errors.LoraDeckError if isinstance(failure, Exception) else KeyboardInterrupt) as caught:
        deck.add(files["a"], name="a")
    if isinstance(failure, Exception):
        assert "returned to its previous stack" in str(caught.value)
    assert_bit_identical(before, base_weights(pipe))
    assert _layers(pipe) == layers and deck.owner.loaded_keys == deck.owner.applied.keyed()[0][:1]
    assert deck.owner.snapshot is snapshot and [v.name for v in deck.active()] == ["k"]
    assert torch.equal(render(pipe, steps=2), image)


def test_a_failing_snapshot_listener_cannot_leave_a_half_applied_stack(files):
    pipe = make_pipe()
    deck = Deck(pipe).add(files["k"], name="k")
    before, image = base_weights(pipe), render(pipe, steps=2)

    def interrupt(snapshot):
        raise KeyboardInterrupt

    deck.owner.runtime.events.subscribe(interrupt)
    with pytest.raises(KeyboardInterrupt):
        deck.fuse()
    assert_bit_identical(before, base_weights(pipe))
    assert torch.equal(render(pipe, steps=2), image) and not deck.active()[0].fused


# -- ReDoS ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["(a+)+$", "(x|x)*y", "^(.*a){20}$"])
def test_a_regular_expression_from_a_file_is_refused_fast_never_run(tmp_path, key):
    sd = {f"unet.{TO_Q}.lora_A.weight": torch.randn(4, 16), f"unet.{TO_Q}.lora_B.weight": torch.randn(16, 4)}
    config = {"unet.r": 4, "unet.lora_alpha": 4, "unet.alpha_pattern": {key: 8}}
    path = fx.write_state(str(tmp_path / "redos.safetensors"), sd, {"lora_adapter_metadata": json.dumps(config)})
    started = time.perf_counter()
    with pytest.raises(LoraFileError, match="not a plain module name"):
        Deck(make_pipe()).add(path)
    assert time.perf_counter() - started < 5


def test_a_key_that_backtracks_a_pattern_exponentially_is_handled_fast(tmp_path):
    sd = {f"{_kohya()}.lora_down.weight": torch.randn(4, 16), f"{_kohya()}.lora_up.weight": torch.randn(16, 4),
          "x" + ".lora_lora" * 45 + ".-": torch.randn(2, 2)}  # took 2^45 steps in the old key-stem pattern
    path = fx.write_state(str(tmp_path / "stems.safetensors"), sd)
    started = time.perf_counter()
    with pytest.raises(errors.IncompatibleLoraError, match="in part"):
        Deck(make_pipe()).add(path)
    assert time.perf_counter() - started < 5


# -- resource bombs -------------------------------------------------------------------------------------------
@pytest.fixture
def no_products(monkeypatch):
    """Any Kronecker/Hadamard/Tucker product built from the file fails the test."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a product was built before the shapes were checked")

    for name in ("kron_pair", "hadamard_pair", "tucker_down", "identity_split"):
        monkeypatch.setattr(lowrank, name, forbidden)
    monkeypatch.setattr(torch, "kron", forbidden)


BOMBS = {  # a 0.7 MB LoKr asking for 32 GB, a Tucker core asking for a 4096 x 4096 kernel, a LoHa of rank 10^8
    "lokr_full": {"lokr_w1": (300, 300), "lokr_w2": (300, 300)},
    "tucker_kernel": {"lokr_w1": (4, 4), "lokr_w2_a": (2, 4), "lokr_w2_b": (2, 4), "lokr_t2": (2, 2, 64, 64)},
    "locon_mid": {"lora_down.weight": (2, 16, 1, 1), "lora_mid.weight": (2, 2, 99, 99),
                  "lora_up.weight": (16, 2, 1, 1)},
}


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_resource_bombs_are_refused_before_anything_is_allocated(tmp_path, bomb, no_products):
    sd = {f"{_kohya()}.{part}": torch.randn(*shape) for part, shape in BOMBS[bomb].items()}
    path = fx.write_state(str(tmp_path / f"{bomb}.safetensors"), sd)
    pipe = make_pipe()
    before, rss = base_weights(pipe), _rss()
    with pytest.raises(errors.IncompatibleLoraError, match=f"{_kohya()[len('lora_unet_'):]}: a product of"):
        Deck(pipe).add(path)
    assert _rss() - rss < 200 * 1024**2
    assert_bit_identical(before, base_weights(pipe))


def test_a_huge_rank_product_on_a_small_layer_is_built_dense_within_the_layers_size(tmp_path, monkeypatch):
    """LoHa factors of rank 20000 on a 16 x 16 layer: the pair would have 4e8 columns (51 GB); the dense
    delta is 256 numbers, so that is what is built (and then refused by the magnitude bound, not by memory)."""
    monkeypatch.setattr(lowrank, "hadamard_pair", lambda *a: pytest.fail("built the rank-r1*r2 pair"))
    sd = {f"{_kohya()}.{part}": torch.randn(*shape) * 0.01 for part, shape in
          (("hada_w1_a", (16, 20_000)), ("hada_w1_b", (20_000, 16)), ("hada_w2_a", (16, 20_000)),
           ("hada_w2_b", (20_000, 16)))}
    path = fx.write_state(str(tmp_path / "rank.safetensors"), {**sd, f"{_kohya()}.alpha": torch.tensor(1.0)})
    rss = _rss()
    deck = Deck(make_pipe()).add(path, name="dense")
    assert _rss() - rss < 400 * 1024**2
    layer = deck.pipe.unet.get_submodule(TO_Q)
    assert layer.lora_A["ld_" + deck.stack.adapters[0].sha256[:16]].weight.shape[0] == 16  # rank min(16, 16)


def test_factors_whose_ranks_disagree_name_the_module(tmp_path):
    sd = {f"{_kohya()}.hada_w1_a": torch.randn(16, 2), f"{_kohya()}.hada_w1_b": torch.randn(3, 16),
          f"{_kohya()}.hada_w2_a": torch.randn(16, 2), f"{_kohya()}.hada_w2_b": torch.randn(2, 16)}
    path = fx.write_state(str(tmp_path / "ranks.safetensors"), sd)
    with pytest.raises(LoraFileError, match=f"do not fit together.*{_kohya()[len('lora_unet_'):]}.*hada_w1"):
        Deck(make_pipe()).add(path)


# -- finite values that would make NaN images ----------------------------------------------------------------
@pytest.mark.parametrize("change", ["alpha", "factors", "both"])
def test_finite_but_absurd_values_are_refused_at_load_naming_the_module(files, tmp_path, change):
    sd = load_file(files["k"])
    module = sorted(k for k in sd if k.startswith("lora_unet_") and k.endswith(".alpha"))[0].removesuffix(".alpha")
    if change in ("alpha", "both"):
        sd[f"{module}.alpha"] = torch.tensor(3e38)
    if change in ("factors", "both"):
        sd[f"{module}.lora_up.weight"] = sd[f"{module}.lora_up.weight"] * 1e5
    path = str(tmp_path / "absurd.safetensors")
    save_file(sd, path)
    pipe = make_pipe()
    before = base_weights(pipe)
    with pytest.raises(LoraFileError, match=r"would change unet module .*times the norm of its weight") as caught:
        Deck(pipe).add(path)
    assert module.removeprefix("lora_unet_") in str(caught.value).replace(".", "_")
    assert_bit_identical(before, base_weights(pipe))


def test_an_image_that_comes_out_nan_is_an_error_naming_the_stack(files, tmp_path):
    """Within the bound at load, but fused at strength 100 without safe fusing a float16 layer overflows."""
    pipe = make_pipe(torch.float16)
    sd = load_file(files["a"])
    key = sorted(k for k in sd if k.startswith("unet.") and "lora_B" in k)[0]
    up = torch.zeros_like(sd[key])
    up[0] = 5000.0 / float(sd[key.replace("lora_B", "lora_A")].float().sum(0).norm())
    sd[key] = up
    path = str(tmp_path / "loud.safetensors")
    save_file(sd, path)
    deck = Deck(pipe).add(path, name="loud", model=100.0).fuse(safe_fusing=False)
    with pytest.raises(errors.NonFiniteOutputError, match="'loud' \\(fused; clip=1, model=100\\)"):
        generate(deck.owner, deck.stack, GenerateParams(prompt="a", steps=1, width=64, height=64))


# -- names on every entry point -------------------------------------------------------------------------------
@pytest.fixture
def hostile_models(tmp_path, files, use_models):
    """models/loras with a good file, symlinks (inside, outside, loops, two to '.'), a FIFO."""
    loras = tmp_path / "models" / "loras"
    (loras / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    for target in (loras / "good.safetensors", loras / "sub" / "b.safetensors", outside / "out.safetensors"):
        shutil.copyfile(files["k"], target)
    (loras / "linkfile.safetensors").symlink_to(loras / "good.safetensors")
    (loras / "linkdir").symlink_to(loras / "sub")
    (loras / "outfile.safetensors").symlink_to(outside / "out.safetensors")
    (loras / "outdir").symlink_to(outside)
    (loras / "dot1").symlink_to(".")
    (loras / "dot2").symlink_to(".")
    (loras / "loop.safetensors").symlink_to(loras / "loop2.safetensors")
    (loras / "loop2.safetensors").symlink_to(loras / "loop.safetensors")
    (loras / "sub" / "up").symlink_to("..")
    os.mkfifo(loras / "fifo.safetensors")
    use_models(str(tmp_path / "models"))
    return loras


HOSTILE = {"a\x00b.safetensors": "control characters", "a\nb.safetensors": "control characters",
           "x" * 2000 + ".safetensors": "over 1024 characters", "loop.safetensors": "symlink loop",
           "fifo.safetensors": "FIFO"}


def _within(seconds: float, fn):
    """fn() run on a thread that must finish within ``seconds`` (a hang fails instead of blocking CI)."""
    result, context = {}, contextvars.copy_context()  # the test's runtime (host.using) goes along

    def run():
        try:
            result["value"] = context.run(fn)
        except BaseException as exc:  # re-raised on the test's thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn} did not finish within {seconds} s"
    if "error" in result:
        raise result["error"]
    return result.get("value")


def test_listing_walks_each_loop_once_and_lists_only_what_resolves(hostile_models):
    names = _within(30, host.lora_names)
    assert {"good.safetensors", "linkfile.safetensors", "sub/b.safetensors", "linkdir/b.safetensors",
            "outfile.safetensors", "outdir/out.safetensors"} <= set(names)  # links followed, as ComfyUI lists them
    # dot1, dot2 and sub/up lead back to a parent: walked once, under the parent's own name
    assert not [n for n in names if "loop" in n or "fifo" in n or n.startswith("dot") or "/up/" in n]
    for name in names:
        if "demo" not in name:
            assert host.locate_lora(name).path.startswith(str(hostile_models)), name  # the name as listed


def test_symlinked_files_and_folders_resolve_everywhere_wherever_they_point(hostile_models, files):
    shutil.copyfile(files["a"], hostile_models.parent.parent / "secret.safetensors")  # beside models/, no link to it
    handle = PipelineHandle(Deck(make_pipe()).owner)
    load = NODE_CLASS_MAPPINGS["LoadLoRA|LoRADeck"]
    for name in ("linkfile.safetensors", "linkdir/b.safetensors", "outfile.safetensors", "outdir/out.safetensors"):
        assert load.VALIDATE_INPUTS(name) is True
        assert load().load(handle, name, 1.0, 1.0)["result"][0].stack.adapters
    for name in ("../../secret.safetensors", "sub/../../../secret.safetensors"):  # a name never climbs out itself
        assert "not found" in load.VALIDATE_INPUTS(name)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_names_give_a_clear_error_on_every_entry_point(hostile_models, name, tmp_path):
    why = HOSTILE[name]
    handle = PipelineHandle(Deck(make_pipe()).owner)
    load, stack = NODE_CLASS_MAPPINGS["LoadLoRA|LoRADeck"], NODE_CLASS_MAPPINGS["StackLoRA|LoRADeck"]
    assert UNUSABLE in load.VALIDATE_INPUTS(name) and why in load.VALIDATE_INPUTS(name)
    assert stack.VALIDATE_INPUTS(lora_name_1=name).startswith("lora_name_1: ")
    with pytest.raises(LoraFileError, match=UNUSABLE):
        _within(30, lambda: load().load(handle, name, 1.0, 1.0))
    with pytest.raises(LoraFileError, match=UNUSABLE):  # the Python API, by path
        _within(30, lambda: Deck(make_pipe()).add(str(hostile_models / name)))
    prompt = {"1": {"class_type": "LoadPipeline|LoRADeck", "inputs": {"model_name": "tiny-sd (built-in)",
                                                                      "dtype": "auto"}},
              "2": {"class_type": "LoadLoRA|LoRADeck", "inputs": {"pipeline": ["1", 0], "lora_name": name,
                                                                  "strength_model": 1.0, "strength_clip": 1.0}}}
    with pytest.raises(WorkflowError, match=UNUSABLE):
        run_workflow(from_data(prompt, "hostile"), str(tmp_path / "out"), order=["2"],
                     runtime=host.runtime())


def test_the_resolve_route_answers_hostile_names_with_text_never_500(hostile_models):
    pytest.importorskip("aiohttp")
    from test_panel_routes import FakePromptServer, _get, panel_runtime

    from loradeck.nodes import routes

    server = FakePromptServer()
    current = host.runtime()  # the handler runs on another thread, outside this test's context
    routes.register(server.routes, panel_runtime(), lambda name, hashes: host.locate_lora(name, hashes, current))
    for name in ("a\x00b.safetensors", "a\x1bb.safetensors", "\x7f"):
        status, answer, _ = _get(server.routes, routes.RESOLVE_PATH, name=name)
        assert status == 400 and UNUSABLE in answer["error"], name
    for name in ("loop.safetensors", "fifo.safetensors"):  # a well-formed name: answered, not found, and why
        status, answer, _ = _get(server.routes, routes.RESOLVE_PATH, name=name)
        assert status == 200 and answer["found"] is None and UNUSABLE in answer["error"], (name, answer)
    status, answer, _ = _get(server.routes, routes.RESOLVE_PATH, name="dot1/dot2/good.safetensors")
    assert status == 200 and (answer["found"] or answer["error"]), answer


def test_api_entry_points_refuse_what_is_not_a_path(files):
    deck = Deck(make_pipe())
    for source, error in ((123, SpecError), (b"a.safetensors", SpecError), ("x" * 5000, LoraFileError),
                          (files["k"] + "\x00", LoraFileError), ({"k": "not a tensor"}, SpecError)):
        with pytest.raises(error):
            deck.add(source)
    with pytest.raises(SpecError, match="network_alphas"):
        deck.add({f"unet.{TO_Q}.lora_A.weight": torch.ones(1, 16)}, network_alphas={"x": "text"})
    with pytest.raises(errors.PipelineLoadError, match="not a usable model name"):
        NODE_CLASS_MAPPINGS["LoadPipeline|LoRADeck"]().load("tiny-sd\x00 (built-in)", "auto")


# -- memory ---------------------------------------------------------------------------------------------------
def test_remove_and_unload_free_the_files_store_entries(files, runtime):
    deck = Deck(make_pipe()).add(files["a"], name="a").add(files["k"], name="k")
    assert len(runtime.store) == 4  # two files, two conversions
    deck.remove("a")
    assert len(runtime.store) == 2
    deck.unload()
    assert len(runtime.store) == 0 and runtime.store.nbytes == 0
    assert not getattr(deck.pipe.unet, "peft_config", None)


def test_a_stack_still_alive_keeps_the_store_entries_of_a_removed_adapter(files, runtime):
    deck = Deck(make_pipe()).add(files["a"], name="a").add(files["k"], name="k")
    branch = deck.stack  # e.g. another graph branch's output that still describes both
    reads = runtime.store.reads
    deck.remove("a")
    assert len(runtime.store) == 4 and not [k for k in deck.owner.loaded_keys if "a.safetensors" in k]
    deck.add(files["a"], name="a")  # back from the store: no file read
    assert runtime.store.reads == reads
    deck.remove("a")
    del branch  # nothing describes 'a' any more: the next release frees it
    deck.owner.release()
    assert len(runtime.store) == 2


def test_a_hostile_tokenizer_config_is_no_tokenizer_never_a_foreign_error(tmp_path):
    from loradeck.core.models.tokenizers import kind_of

    (tmp_path / "tokenizer.json").write_text("{}")
    for text in ("[" * 200_000 + "]" * 200_000, '{"tokenizer_class": Infinity}', "[1]"):
        (tmp_path / "tokenizer_config.json").write_text(text)
        assert kind_of(str(tmp_path)) is None
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "CLIPTokenizer"}')
    assert kind_of(str(tmp_path)) == "clip"
