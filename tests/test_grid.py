"""LoRA Grid: every cell of the one batched pass equals the same configuration run alone through Generate
(fp32, <= 2/255), for SD1, SDXL, Flux, Chroma, Krea 2, Qwen-Image, Z-Image and FLUX.2 [klein] (whose
classifier-free guidance runs the conditional and unconditional rows in two passes), with a strength axis on one
adapter; fallbacks say why."""

from __future__ import annotations

import dataclasses

import a1111_parser
import pytest
import torch

from family_fixtures import PARAMS, fresh
from helpers import make_pipe
from lora_fixtures import save_family_lora, write_dora, write_peft
from loradeck.core import Deck, SpecError, run_grid
from loradeck.core.generation.generate import generate
from loradeck.core.generation.grid_axes import Cells, parse_axis

TOLERANCE = 2 / 255
# X: one adapter's strength (a number, per component, a schedule); Y: which adapters are on
X_AXIS = "strength first: 0 | 0.6 | model=1.3, clip=0.3 | ramp(1.2, 0)"
X_WEIGHTS = [{"model": 0.0, "clip": 0.0}, {"model": 0.6, "clip": 0.6}, {"model": 1.3, "clip": 0.3},
             {"model": "ramp(1.2, 0)", "clip": 1.2}]
Y_AXIS = "adapters: none | second"
Y_SECOND = [False, True]
GRID_FAMILIES = ["sd1", "sdxl", "flux", "chroma", "krea2", "qwenimage", "zimage", "flux2"]
# Flux has no classic negative prompt; Qwen-Image's call sends an empty one as " " (its true CFG needs one)
NEGATIVE = {"flux": "", "qwenimage": "", "flux2": ""}


@pytest.fixture(scope="module")
def family_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid_loras")
    return {key: {"first": save_family_lora(key, str(root / f"{key}_first.safetensors"), seed=1),
                  "second": save_family_lora(key, str(root / f"{key}_second.safetensors"), seed=2)}
            for key in GRID_FAMILIES}


def _alone(deck: Deck, x_weights: dict, second_on: bool, params) -> torch.Tensor:
    """The cell's configuration built with the Python API (independently of the axes' parser), run alone."""
    deck.set_weights("first", **x_weights).set_weights("second", enabled=second_on)
    return generate(deck.owner, deck.stack, params)


@pytest.mark.parametrize("key", GRID_FAMILIES)
def test_every_cell_equals_its_configuration_run_alone(key, family_files):
    files = family_files[key]
    params = dataclasses.replace(PARAMS, steps=4, negative_prompt=NEGATIVE.get(key, "blurry"))
    deck = Deck(fresh(key)).add(files["first"], "first", model=0.8).add(files["second"], "second", model=0.7, clip=0.5)
    stack = deck.stack
    result = run_grid(deck.owner, stack, params, X_AXIS, Y_AXIS)
    assert result.batched, result.text
    assert result.cells.shape == (8, 64, 64, 3)
    assert result.grid.shape[0] == 1 and result.grid.shape[1] > 2 * 64 and result.grid.shape[2] > 4 * 64
    assert "one batched denoising pass" in result.text and "cell 8 (row 2, column 4)" in result.text
    assert deck.stack == stack  # the grid leaves the stack alone
    for row, second_on in enumerate(Y_SECOND):
        for column, weights in enumerate(X_WEIGHTS):
            alone = _alone(deck, weights, second_on, params)
            cell = result.cells[row * len(X_WEIGHTS) + column]
            assert (cell - alone[0]).abs().max() <= TOLERANCE, f"cell row {row}, column {column}"
    distinct = {tuple((result.cells[i] * 255).round().flatten()[:64].tolist()) for i in range(8)}
    assert len(distinct) == 8  # every configuration made its own image
    # afterwards the pipeline renders as before the grid
    deck._set(stack)
    plain = generate(deck.owner, stack, params)
    assert (plain - generate(Deck(fresh(key)).add(files["first"], "first", model=0.8)
                             .add(files["second"], "second", model=0.7, clip=0.5).owner, stack, params)).abs().max() \
        <= TOLERANCE


def test_stacks_axis_and_prompt_tags(lora_dir, use_models, files):
    use_models(str(lora_dir))
    deck = Deck(make_pipe()).add(files["a"], "a")
    params = dataclasses.replace(PARAMS, steps=3, prompt="a lighthouse <lora:k:0.5>")
    result = run_grid(deck.owner, deck.stack, params, "stacks: soft = a: 0.3 | strong = a: 1.2; <lora:sub/b:0.8>")
    assert result.batched and result.cells.shape[0] == 2
    clean = dataclasses.replace(params, prompt="a lighthouse")
    deck.add(files["k"], "k", model=0.5, clip=0.5)
    soft = generate(deck.owner, deck.set_weights("a", model=0.3, clip=0.3).stack, clean)
    strong = generate(deck.owner, deck.set_weights("a", model=1.2, clip=1.2).add(files["b"], "b", 0.8, 0.8).stack,
                      clean)
    assert (result.cells[0] - soft[0]).abs().max() <= TOLERANCE
    assert (result.cells[1] - strong[0]).abs().max() <= TOLERANCE
    assert "Lora hashes" in result.parameters[1] and "b: " in result.parameters[1]


def test_differing_fused_adapters_fall_back_to_sequential_runs(files):
    deck = Deck(make_pipe()).add(files["a"], "a").add(files["b"], "b").fuse(names=["a"])
    params = dataclasses.replace(PARAMS, steps=3)
    result = run_grid(deck.owner, deck.stack, params, "adapters: none | a")
    assert not result.batched and "one after another (sequential) because fused adapters (a) differ" in result.text
    alone = generate(deck.owner, deck.stack, params)
    assert (result.cells[1] - alone[0]).abs().max() <= TOLERANCE


def test_dora_cells(tmp_path, files):
    """DoRA files (kohya and peft) load as low-rank deltas with the magnitude folded in (formats/dora.py), so
    their layers are plain LoRA layers and batch like any other (a peft DoRA layer would run sequentially)."""
    params = dataclasses.replace(PARAMS, steps=3)
    for path in (write_dora(str(tmp_path / "dora.safetensors"), seed=5),
                 write_peft(str(tmp_path / "peft_dora.safetensors"), seed=6, dora=True)):
        deck = Deck(make_pipe()).add(path, "d").add(files["a"], "a")
        result = run_grid(deck.owner, deck.stack, params, "strength d: 0.5 | 1")
        assert result.batched, result.text
        alone = generate(deck.owner, deck.set_weights("d", model=0.5, clip=0.5).stack, params)
        assert (result.cells[0] - alone[0]).abs().max() <= TOLERANCE
    alone = generate(deck.owner, deck.set_weights("d", model=0.5, clip=0.5).stack, params)
    assert (result.cells[0] - alone[0]).abs().max() <= TOLERANCE


def test_axis_errors_name_the_axis(files):
    deck = Deck(make_pipe()).add(files["a"], "a")
    with pytest.raises(SpecError, match="X axis: start with 'strength NAME:'"):
        run_grid(deck.owner, deck.stack, PARAMS, "weights: 1 | 2")
    with pytest.raises(SpecError, match="Y axis.*no adapter named 'nope'"):
        run_grid(deck.owner, deck.stack, PARAMS, "strength a: 0 | 1", "adapters: a | nope")


OVERRIDING_Y = "stacks: soft = style: 0.5; kohya: off | strong = kohya: 1.2"


def _cells_and_warnings(deck: Deck, x_axis: str, y_axis: str) -> list[str]:
    x, y = parse_axis(x_axis, "X"), parse_axis(y_axis, "Y")
    maker = Cells(deck.owner, deck.stack)
    return maker.overrides(x, y, maker.build(x, y))


def test_an_axis_value_the_other_axis_sets_again_is_warned(files):
    """Y is applied after X: where a Y value sets the adapter the X values set, that row does not show X."""
    deck = Deck(make_pipe()).add(files["a"], "style").add(files["k"], "kohya")
    (soft,) = _cells_and_warnings(deck, "strength style: 0 | 1", OVERRIDING_Y)
    assert soft == ("Y value 'soft' sets style again after the X value, so the X values do not change "
                    "style in row 1: its 2 cells are the same picture under different X labels")
    (off,) = _cells_and_warnings(deck, "strength style: 0 | 1", "adapters: none | style")  # Y switches style off
    assert off.startswith("Y value 'none' sets style again") and "row 1" in off
    partly = _cells_and_warnings(deck, "strength style: 0 | 1", "stacks: a = style: model=0.5 | b = kohya: 0")
    assert partly == ["Y value 'a' sets style (model) again after the X value, so the X values do not "
                      "change style (model) in row 1"]  # clip still follows X: the cells differ
    assert _cells_and_warnings(deck, "strength style: 0 | 1", "strength kohya: 0 | 1") == []
    assert _cells_and_warnings(deck, "strength style: 0 | 1", "") == []


def test_the_grid_warns_in_its_text_and_log_and_its_png_records_each_cells_stack(files, caplog):
    deck = Deck(make_pipe()).add(files["a"], "style").add(files["k"], "kohya")
    params = dataclasses.replace(PARAMS, steps=1)
    with caplog.at_level("WARNING", logger="loradeck.core.generation.grid"):
        result = run_grid(deck.owner, deck.stack, params, "strength style: 0 | 1", OVERRIDING_Y)
    assert "warning: Y value 'soft' sets style again" in result.text.splitlines()[1]
    assert any(r.getMessage().startswith("LoRA Grid: Y value 'soft' sets style again") for r in caplog.records)
    assert torch.equal(result.cells[0], result.cells[1]) and not torch.equal(result.cells[2], result.cells[3])
    text = deck.owner.runtime.image_info.for_image(result.grid, 0)
    fields = a1111_parser.parse(text)
    assert fields["LoRA Deck"] == (
        "cell 1 (style: 0 / soft): style: clip=0.5 model=0.5; cell 2 (style: 1 / soft): style: clip=0.5 model=0.5; "
        "cell 3 (style: 0 / strong): style: clip=0 model=0, kohya: clip=1.2 model=1.2; "
        "cell 4 (style: 1 / strong): style: clip=1 model=1, kohya: clip=1.2 model=1.2")
    assert {r["name"] for r in fields["resources"] if r["type"] == "lora"} == {"style", "kohya"}


def test_rows_inside_a_folding_module_follow_its_own_batch():
    """Krea 2's text fusion runs its layerwise blocks on (batch x tokens) rows: each cell's rows come together
    there, while elsewhere (and without a folding module) the cells repeat as classifier-free guidance stacks them."""
    from loradeck.core.adapters.mixed_batch import MixedBatchError, _Outer, _row_names

    outer = _Outer()
    assert _row_names(("a", "b"), 4, None) == ["a", "b", "a", "b"]
    outer.batch = 2
    assert _row_names(("a", "b"), 2, outer) == ["a", "b"]  # the module's own rows: as everywhere else
    assert _row_names(("a", "b"), 6, outer) == ["a"] * 3 + ["b"] * 3
    outer.batch = 4  # unconditional and conditional rows in one call
    assert _row_names(("a", "b"), 8, outer) == ["a", "a", "b", "b", "a", "a", "b", "b"]
    with pytest.raises(MixedBatchError, match="batch of 9 inside a module run on a batch of 4"):
        _row_names(("a", "b"), 9, outer)
