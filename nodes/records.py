"""What loader nodes record about their LoRAs, and read back from a shared workflow.

After a run, LoadLoRA/StackLoRA send ``loradeck_info`` (match report, trigger words) and
``loradeck_models`` (name, SHA-256, autov2) in their ``ui`` output; web/node_info.js shows the info
and stores the hashes as the node's ``properties.models`` (``{name, directory: "loras", hash,
hash_type: "SHA256"}``), which ComfyUI saves with the workflow and its missing-models dialog reads.
On another machine the node finds those entries in the workflow (hidden ``EXTRA_PNGINFO`` +
``UNIQUE_ID``) and resolves a name that is not there by content hash.
"""

from __future__ import annotations

import logging
import re

from ..core.errors import LoraFileError
from ..core.files.hashing import autov2

log = logging.getLogger(__name__)

LORAS = "loras"
MISSING = "loradeck_missing"  # node property: recorded entries of files a machine lacked (web/shared_names.js)
NONE_CHOICE = "None"
# nodes whose lora_name / lora_name_N / lora_name_high / lora_name_low inputs name files
LOADERS = ("LoadLoRA|LoRADeck", "StackLoRA|LoRADeck", "LoadLoRAPair|LoRADeck")
NAME_INPUT = re.compile(r"^lora_name(_\d+|_high|_low)?$")
HIDDEN = {"unique_id": "UNIQUE_ID", "extra_pnginfo": "EXTRA_PNGINFO"}
# which node applied a stack, and its title ("api_prompt": Generate has a text input named "prompt")
SOURCE_HIDDEN = {"unique_id": "UNIQUE_ID", "api_prompt": "PROMPT"}


def source_of(unique_id, prompt) -> tuple[str, str]:
    """(node id, node title) of the node that applies a stack, for the panel's per-branch view."""
    node = prompt.get(str(unique_id)) if isinstance(prompt, dict) and unique_id is not None else None
    meta = node.get("_meta") if isinstance(node, dict) else None
    title = meta.get("title") if isinstance(meta, dict) else None
    return ("" if unique_id is None else str(unique_id)), (title if isinstance(title, str) else "")


def _node(extra_pnginfo, unique_id) -> dict:
    workflow = extra_pnginfo.get("workflow") if isinstance(extra_pnginfo, dict) else None
    nodes = workflow.get("nodes") if isinstance(workflow, dict) else None
    for node in nodes if isinstance(nodes, list) else ():
        if isinstance(node, dict) and unique_id is not None and str(node.get("id")) == str(unique_id):
            return node
    return {}


def recorded_hashes(extra_pnginfo, unique_id) -> dict[str, tuple[str, ...]]:
    """LoRA name -> hashes recorded in this node's ``properties.models`` and ``properties.loradeck_missing`` (where
    web/shared_names.js keeps the entries of files a machine lacked, out of the frontend's missing-model
    reports); empty when there are none."""
    properties = _node(extra_pnginfo, unique_id).get("properties")
    lists = [properties.get(key) for key in ("models", MISSING)] if isinstance(properties, dict) else []
    models = [entry for entries in lists if isinstance(entries, list) for entry in entries]
    found: dict[str, list[str]] = {}
    for entry in models:
        if isinstance(entry, dict) and entry.get("directory", LORAS) == LORAS and entry.get("hash"):
            found.setdefault(str(entry.get("name", "")), []).append(str(entry["hash"]))
    return {name: tuple(hashes) for name, hashes in found.items()}


def model_entry(name: str, sha256: str, listed: bool = True) -> dict:
    """``listed``: ComfyUI's own LoRA list has the file, so the frontend may record it in properties.models."""
    return {"name": name, "sha256": sha256, "autov2": autov2(sha256), "listed": listed}


def info_lines(name: str, report) -> list[str]:
    """``name: <match report>`` then base model, trigger words and title when the report knows them."""
    first, *rest = report.info_text().splitlines()
    return [f"{name}: {first}", *rest]


def trigger_words(reports) -> str:
    """The trigger words of every report, once each, in order: what a prompt needs to wake these LoRAs."""
    words = dict.fromkeys(w for report in reports for w in report.metadata.trigger_words)
    return ", ".join(words)


def part_view(spec, index: int):
    """A pair adapter's part file ``index`` as the (name, path, sha256) view ``loader_ui`` reads of a spec."""
    from types import SimpleNamespace

    part = spec.part_files[index]
    return SimpleNamespace(name=f"{spec.name} ({part.component})", path=part.path, sha256=part.sha256)


def loader_ui(entries, has_preview=lambda path: False, listed=lambda path: True) -> dict:
    """The ``ui`` dict of a loader node for ``(lora_name, Located, AdapterSpec, LoadReport)`` entries:
    info lines, the hashes to record, and per file its trigger words and whether it has a preview (beside
    the name it was found under: a symlinked LoRA's picture is beside the link)."""
    info, models, loras = [], [], []
    for lora_name, found, spec, report in entries:
        info.extend(info_lines(spec.name, report))
        models.append(model_entry(lora_name, spec.sha256, listed(spec.path)))
        loras.append({"name": found.name, "adapter": spec.name, "title": report.metadata.title,
                      "trigger_words": list(report.metadata.trigger_words), "preview": bool(has_preview(found.path))})
    return {"loradeck_info": info, "loradeck_models": models, "loradeck_loras": loras}


def localize(prompt: dict, extra_pnginfo, locate) -> list[tuple[str, str, str, str, str]]:
    """Point the LoRA names of Load LoRA / Stack LoRAs nodes in an API ``prompt`` at this machine's files,
    in place, by the rules of ``locate`` (the recorded hashes first). Names that resolve as they are, or not
    at all, are left alone (the node reports the latter). Returns (node, input, old, new, how) per change.

    ComfyUI's queue-time check (VALIDATE_INPUTS) can only take the name itself: it reports an error once
    per argument it takes. Running this before it (ComfyUI's on_prompt hook, the headless runner) is how
    the hashes recorded with each node still decide which file a shared workflow means."""
    changes = []
    for node_id, node in prompt.items() if isinstance(prompt, dict) else ():
        inputs = node.get("inputs") if isinstance(node, dict) and node.get("class_type") in LOADERS else None
        recorded = recorded_hashes(extra_pnginfo, node_id) if isinstance(inputs, dict) else {}
        for key, value in list(inputs.items()) if isinstance(inputs, dict) else ():
            if not NAME_INPUT.match(key) or not isinstance(value, str) or value == NONE_CHOICE:
                continue
            try:
                found = locate(value, list(recorded.get(value, ())))
            except LoraFileError:
                continue
            if found.name != value:
                inputs[key] = found.name
                changes.append((str(node_id), key, value, found.name, found.how))
    for node_id, key, old, new, how in changes:
        log.info("loradeck: node %s %s %r is %r here (found by %s)", node_id, key, old, new, how)
    return changes
