"""Prompt tags <lora:name:weight> / <lora:name:model:clip>: the same image as the equivalent Load LoRA nodes."""

from __future__ import annotations

import pytest
import torch

from helpers import a1111_shorthash, make_pipe
from loradeck.core import Deck, LoraFileError, SpecError
from loradeck.core.api import PipelineHandle
from loradeck.core.files.hashing import autov2, stream_sha256
from loradeck.core.generation.generate import generate
from loradeck.core.generation.prompt_tags import parse
from loradeck.core.stacks.specs import GenerateParams
from loradeck.nodes import NODE_CLASS_MAPPINGS


@pytest.fixture
def node_env(lora_dir, use_models):
    use_models(str(lora_dir))
    return PipelineHandle(Deck(make_pipe()).owner), lambda name: NODE_CLASS_MAPPINGS[f"{name}|LoRADeck"]()


def _bytes(images: torch.Tensor) -> torch.Tensor:
    """As a saved PNG holds them: 0..255 integers."""
    return (images * 255).round().to(torch.uint8)


def _generate(node, handle, prompt):
    return node("Generate").generate(handle, prompt, "blurry", 5, 3, 6.0, 64, 64, 1)


def test_parse_strips_tags_and_reads_weights():
    text, tags = parse("a lighthouse <lora:a:0.8:0.5>, <lora:sub/b:-0.6> at dusk <lora:k:te=0.3:unet=1.2>")
    assert text == "a lighthouse, at dusk"
    assert [(t.name, t.model, t.clip) for t in tags] == [("a", 0.8, 0.5), ("sub/b", -0.6, -0.6), ("k", 1.2, 0.3)]
    assert parse("no tags here") == ("no tags here", ())
    with pytest.raises(SpecError, match="name is missing"):
        parse("x <lora::1>")
    with pytest.raises(SpecError, match="expected a number"):
        parse("x <lora:a:strong>")


def test_tags_equal_load_lora_nodes(node_env):
    handle, node = node_env
    base = node("LoadLoRA").load(handle, "k.safetensors", 0.7, 1.0)["result"][0]  # an incoming stack
    tagged, text = _generate(node, base, "a lighthouse <lora:a:0.8:0.5>, <lora:sub/b:-0.6> at dusk")
    nodes = node("LoadLoRA").load(base, "a.safetensors", 0.8, 0.5)["result"][0]
    nodes = node("LoadLoRA").load(nodes, "sub/b.safetensors", -0.6, -0.6)["result"][0]
    loaded, _ = _generate(node, nodes, "a lighthouse, at dusk")
    untagged, _ = _generate(node, base, "a lighthouse, at dusk")
    assert not torch.equal(_bytes(untagged), _bytes(loaded))  # the tags did something
    assert torch.equal(_bytes(tagged), _bytes(loaded))  # 0/255
    assert "Lora hashes" in text and "a: " in text and "b: " in text
    assert base.stack.names == ("k",)  # for that generation only: the incoming stack is unchanged


@pytest.mark.parametrize("which", ["autov2", "a1111"])
def test_tag_by_hash_and_python_api(node_env, files, which):
    handle, node = node_env
    digest = autov2(stream_sha256(files["a"])) if which == "autov2" else a1111_shorthash(files["a"])
    by_hash, _ = _generate(node, handle, f"a lighthouse <lora:{digest}:0.9>")
    loaded = node("LoadLoRA").load(handle, "a.safetensors", 0.9, 0.9)["result"][0]
    assert torch.equal(_bytes(by_hash), _bytes(_generate(node, loaded, "a lighthouse")[0]))
    params = GenerateParams("a lighthouse <lora:a.safetensors:0.9>", "blurry", 5, 3, 6.0, 64, 64)
    assert torch.equal(_bytes(generate(handle.owner, handle.stack, params)), _bytes(by_hash))


def test_unknown_tag_is_a_queue_time_error(node_env):
    handle, node = node_env
    generate_node = NODE_CLASS_MAPPINGS["Generate|LoRADeck"]
    message = generate_node.VALIDATE_INPUTS(prompt="a cat <lora:nope:1>")
    assert isinstance(message, str) and "nope" in message and "prompt tag" in message
    assert generate_node.VALIDATE_INPUTS(prompt="a cat <lora:a:1>") is True
    with pytest.raises(LoraFileError, match="prompt tag <lora:nope:1>"):
        _generate(node, handle, "a cat <lora:nope:1>")
