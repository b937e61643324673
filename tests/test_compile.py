"""torch.compile prepared for hotswap: 0 recompiles within the envelope, one (logged) beyond it, outputs equal
to the eager pipeline. Recompiles are counted with torch._dynamo's counters; the "eager" backend traces with
dynamo exactly as inductor does (the guards decide recompiles), so these tests stay fast."""

from __future__ import annotations

import logging
import os

import pytest
import torch
import torch._dynamo
from peft.tuners.tuners_utils import BaseTunerLayer
from torch._dynamo.utils import counters

from helpers import make_pipe
from loradeck.core import Deck, SpecError
from loradeck.core.adapters.compiled import SCALE
from loradeck.core.api import PipelineHandle
from loradeck.nodes.compile import CompilePipeline


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _frames() -> int:
    return int(counters["frames"]["total"])


def _inputs(pipe):
    config = pipe.unet.config
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(2, config.in_channels, config.sample_size, config.sample_size, generator=gen),
            torch.tensor(10), torch.randn(2, 77, config.cross_attention_dim, generator=gen))


def _unet(deck: Deck) -> torch.Tensor:
    sample, step, text = _inputs(deck.pipe)
    with torch.inference_mode():
        return deck.pipe.unet(sample, step, encoder_hidden_states=text).sample


OPS = (  # (what, change): every kind of stack change within the envelope
    ("reweight", lambda d, f: d.set_weights("a", model=0.3, clip=0.1)),
    ("add", lambda d, f: d.add(f["k"], name="k")),
    ("disable", lambda d, f: d.set_weights("k", enabled=False)),
    ("enable + reweight", lambda d, f: d.set_weights("k", enabled=True, model=-0.5)),
    ("switch", lambda d, f: d.set_adapters(["k"], [0.8])),
    ("both", lambda d, f: d.set_adapters(["a", "k"], [1.0, 0.4])),
    ("block weights", lambda d, f: d.set_weights("k", blocks={"down": 0.2})),
    ("remove", lambda d, f: d.remove("a")),
    ("add another", lambda d, f: d.add(f["b"], name="b")),
    ("fuse one", lambda d, f: d.fuse(names=["b"])),
    ("unfuse", lambda d, f: d.unfuse()),
    ("add back", lambda d, f: d.add(f["a"], name="a", model=0.6)),
)


def test_no_recompile_within_the_envelope_and_eager_equal_outputs(files):
    compiled = Deck(make_pipe()).add(files["a"], name="a").compile(backend="eager", max_rank=4, max_adapters=3)
    eager = Deck(make_pipe()).add(files["a"], name="a")
    assert torch.allclose(_unet(compiled), _unet(eager), atol=1e-5)
    frames = _frames()
    assert frames >= 1
    scales = {n: getattr(m, SCALE) for n, m in compiled.pipe.unet.named_modules() if hasattr(m, SCALE)}
    for what, change in OPS:
        change(compiled, files)
        change(eager, files)
        assert (_unet(compiled) - _unet(eager)).abs().max() <= 1e-4, what
        assert _frames() == frames, f"{what} recompiled"
    # a strength change writes the same scale tensors in place: what the graph reads never changes identity
    assert all(getattr(compiled.pipe.unet.get_submodule(n), SCALE) is t for n, t in scales.items())
    layer = next(m for m in compiled.pipe.unet.modules() if getattr(m, "scaling", None) and SCALE in m._buffers)
    slot_key, start, _ = layer._loradeck_slots[0]
    assert float(getattr(layer, SCALE)[start]) == pytest.approx(layer.scaling[slot_key])


def test_beyond_the_envelope_recompiles_once_with_a_log_line(files, caplog):
    compiled = Deck(make_pipe()).add(files["b"], name="b").compile(backend="eager", max_rank=2, max_adapters=1,
                                                                      targets="loaded")
    eager = Deck(make_pipe()).add(files["b"], name="b")
    _unet(compiled)
    frames = _frames()
    with caplog.at_level(logging.WARNING, logger="loradeck.core.adapters.compiled"):
        compiled.add(files["a"], name="a")  # new modules (to_q, to_out.0) and rank 2 + 4 at to_k, to_v
    eager.add(files["a"], name="a")
    assert "outside the compile envelope" in caplog.text and "recompiles once" in caplog.text
    assert "low-rank rows" in caplog.text
    assert (_unet(compiled) - _unet(eager)).abs().max() <= 1e-4
    assert _frames() == frames + 1
    for change in (lambda d: d.set_weights("a", model=0.2), lambda d: d.set_adapters(["b"], [1.0]),
                   lambda d: d.set_adapters(["a", "b"], [0.5, 0.5])):
        change(compiled)
        change(eager)
        assert (_unet(compiled) - _unet(eager)).abs().max() <= 1e-4
    assert _frames() == frames + 1


def test_uncompile_and_unload_restore_the_plain_model(files):
    deck = Deck(make_pipe()).add(files["a"], name="a")
    plain = {n for n, _ in deck.pipe.unet.named_modules()}
    before = _unet(deck)
    deck.compile(backend="eager", max_rank=4)
    assert [n for n, m in deck.pipe.unet.named_modules() if hasattr(m, SCALE)]
    deck.uncompile()
    assert deck.pipe.unet._compiled_call_impl is None
    assert not [n for n, m in deck.pipe.unet.named_modules() if hasattr(m, SCALE)]
    assert torch.allclose(_unet(deck), before, atol=1e-6)
    deck.compile(backend="eager").unload()
    assert not [m for m in deck.pipe.unet.modules() if isinstance(m, BaseTunerLayer)]
    assert {n for n, _ in deck.pipe.unet.named_modules()} == {n for n in plain if ".lora_" not in n and
                                                               not n.endswith(".base_layer")}


def test_compile_node_and_spec_checks(files):
    deck = Deck(make_pipe()).add(files["a"], name="a")
    handle = PipelineHandle(deck.owner, deck.stack)
    (out,) = CompilePipeline().compile(handle, "default", "eager", 16, 2, "linear")
    assert out.stack.compile.capacity == 32 and out.stack.adapters == handle.stack.adapters
    out.apply()
    assert deck.pipe.unet._compiled_call_impl is not None
    handle.apply()  # a branch without the node runs the same layers eagerly
    assert deck.pipe.unet._compiled_call_impl is None
    with pytest.raises(SpecError, match="targets"):
        deck.compile(targets="everything")
    with pytest.raises(SpecError, match="max_rank"):
        deck.compile(max_rank=0)


@pytest.mark.skipif(not os.environ.get("LORADECK_INDUCTOR_TESTS"), reason="inductor compiles the tiny UNet in "
                    "3+ CPU minutes; set LORADECK_INDUCTOR_TESTS=1 (the benchmark compiles with inductor too)")
def test_inductor_output_equals_eager(files):
    """A real inductor compile of the tiny UNet (needs a C++ compiler): fused kernels, same numbers."""
    compiled = Deck(make_pipe()).add(files["a"], name="a", model=0.7).compile(max_rank=4, max_adapters=2)
    eager = Deck(make_pipe()).add(files["a"], name="a", model=0.7)
    assert (_unet(compiled) - _unet(eager)).abs().max() <= 1e-4
    frames = _frames()
    for deck in (compiled, eager):
        deck.add(files["k"], name="k", model=0.5).set_weights("a", model=-0.3)
    assert (_unet(compiled) - _unet(eager)).abs().max() <= 1e-4
    assert _frames() == frames
