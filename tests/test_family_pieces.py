"""Every registered family provides every piece of a family folder, and each piece works on its tiny model.

A failure names the family and the piece (core/families/README.md says what a folder holds).
"""

from __future__ import annotations

import inspect
import json
import os

import diffusers
import pytest

from family_fixtures import PARAMS, fresh
from loradeck.core.families import BUILTIN_NAMES, FAMILIES, SCHEDULER_CHOICES, family_for_class
from loradeck.core.formats.base_guess import guess_made_for
from loradeck.core.formats.patch import ConvertedLora
from loradeck.core.models.original_names import RowSplit
from loradeck.core.stacks.block_weights import Scheme, denoiser_rule

KEYS = list(FAMILIES)


def _piece(family, name: str, ok: bool, why: str = "") -> None:
    assert ok, f"family {family.key!r} lacks a working piece: {name}" + (f" ({why})" if why else "")


@pytest.mark.parametrize("key", KEYS)
def test_the_row_names_real_diffusers_classes_and_components(key):
    family = FAMILIES[key]
    for cls in family.classes:
        _piece(family, f"pipeline class {cls}", hasattr(diffusers, cls), "diffusers has no such class")
        assert family_for_class(cls) is family
    _piece(family, "components", family.denoiser and family.denoiser not in family.text_encoders)
    prefixes = dict(family.kohya_prefixes)
    _piece(family, "kohya prefixes", set(prefixes.values()) <= set(family.components),
           f"{prefixes} name components it lacks")


@pytest.mark.parametrize("key", KEYS)
def test_the_tiny_built_in_model(key):
    family = FAMILIES[key]
    pipe = fresh(key)
    _piece(family, "tiny model", type(pipe).__name__ == family.pipeline_classes[0],
           f"builds a {type(pipe).__name__}")
    _piece(family, "tiny model's denoiser", getattr(pipe, family.denoiser, None) is not None)
    _piece(family, "built-in name", f"{family.builtin} (built-in)" in BUILTIN_NAMES)


@pytest.mark.parametrize("key", KEYS)
def test_the_generate_call_and_schedulers(key):
    family = FAMILIES[key]
    pipe = fresh(key)
    accepted = inspect.signature(type(pipe).__call__).parameters
    kwargs = family.call(PARAMS, lambda step, total: None)
    _piece(family, "generate call", set(kwargs) <= set(accepted),
           f"{sorted(set(kwargs) - set(accepted))} are not arguments of {type(pipe).__name__}")
    for name, entry in family.schedulers.items():
        _piece(family, f"scheduler {name!r}", name in SCHEDULER_CHOICES and hasattr(diffusers, entry.cls))
        built = getattr(diffusers, entry.cls).from_config(pipe.scheduler.config,
                                                          **entry.config(dict(pipe.scheduler.config), 1))
        assert type(built).__name__ == entry.cls


@pytest.mark.parametrize("key", KEYS)
def test_the_block_weight_scheme(key):
    family = FAMILIES[key]
    _piece(family, "block-weight scheme", isinstance(family.blocks, Scheme) and family.blocks.help)
    _piece(family, "lbw vectors", bool(family.lbw) == (family.blocks.lbw_rule is not None),
           "A1111 vectors need both the ids (lbw) and the scheme's lbw_rule")
    denoiser = getattr(fresh(key), family.denoiser)
    rule = denoiser_rule((), family, denoiser)  # no entries: every module keeps 1.0
    assert {rule(name) for name, _ in denoiser.named_modules()} == {1.0}


@pytest.mark.parametrize("key", KEYS)
def test_the_original_names_and_single_files(key):
    family = FAMILIES[key]
    denoiser = getattr(fresh(key), family.denoiser)
    if family.original_names is not None:
        table = family.original_names(denoiser)
        modules = dict(denoiser.named_modules())
        targets = [t for v in table.values() for t in ([p for p, _ in v.parts] if isinstance(v, RowSplit) else [v])]
        # a target is a module, or a parameter that is not one (Wan's blocks.N.modulation -> scale_shift_table)
        parameters = {name for name, _ in denoiser.named_parameters()}
        _piece(family, "original module names", table and all(t in modules or t in parameters for t in targets),
               "every original name must map to modules (or parameters) the model has")
    for arch in family.single_files:
        index = os.path.join(arch.config_dir, "model_index.json")
        _piece(family, f"single-file configs of {arch.key}", os.path.isfile(index), f"no {index}")
        with open(index, encoding="utf-8") as f:
            assert json.load(f)["_class_name"] in family.classes
    _piece(family, "built-in single-file row", not family.single_files or any(a.tiny for a in family.single_files),
           "a family loaded from single files ships its tiny model's row too, so tests can write one")


@pytest.mark.parametrize("key", KEYS)
def test_the_lora_markers_name_the_family(key):
    family = FAMILIES[key]
    _piece(family, "LoRA markers", bool(family.lora_markers or family.lora_widths))
    for marker, base in family.lora_markers:
        assert base in guess_made_for([f"transformer.{marker}.0.attn.lora_A.weight"], ConvertedLora("", {}))
