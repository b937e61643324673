"""What loader nodes record about their LoRAs, and read back from a shared workflow.

After a run, LoadLoRA/StackLoRA send ``loradeck_info`` (match report, trigger words) and
``loradeck_models`` (name, SHA-256, autov2) in their ``ui`` output; web/node_info.js shows the info
and stores the hashes as the node's ``properties.models`` (``{name, directory: "loras", hash,
hash_type: "SHA256"}``), which ComfyUI saves with the workflow and its missing-models dialog reads.
On another machine the node finds those entries in the workflow (hidden ``EXTRA_PNGINFO`` +
``UNIQUE_ID``) and resolves a name that is not there by content hash.
"""

from __future__ import annotations

from ..core.hashing import autov2

LORAS = "loras"
HIDDEN = {"unique_id": "UNIQUE_ID", "extra_pnginfo": "EXTRA_PNGINFO"}


def _node(extra_pnginfo, unique_id) -> dict:
    workflow = extra_pnginfo.get("workflow") if isinstance(extra_pnginfo, dict) else None
    nodes = workflow.get("nodes") if isinstance(workflow, dict) else None
    for node in nodes if isinstance(nodes, list) else ():
        if isinstance(node, dict) and unique_id is not None and str(node.get("id")) == str(unique_id):
            return node
    return {}


def recorded_hashes(extra_pnginfo, unique_id) -> dict[str, tuple[str, ...]]:
    """LoRA name -> hashes recorded in this node's ``properties.models`` (empty when there are none)."""
    properties = _node(extra_pnginfo, unique_id).get("properties")
    models = properties.get("models") if isinstance(properties, dict) else None
    found: dict[str, list[str]] = {}
    for entry in models if isinstance(models, list) else ():
        if isinstance(entry, dict) and entry.get("directory", LORAS) == LORAS and entry.get("hash"):
            found.setdefault(str(entry.get("name", "")), []).append(str(entry["hash"]))
    return {name: tuple(hashes) for name, hashes in found.items()}


def model_entry(name: str, sha256: str) -> dict:
    return {"name": name, "sha256": sha256, "autov2": autov2(sha256)}


def info_lines(name: str, report) -> list[str]:
    """``name: <match report>`` then base model, trigger words and title when the report knows them."""
    first, *rest = report.info_text().splitlines()
    return [f"{name}: {first}", *rest]


def loader_ui(entries) -> dict:
    """The ``ui`` dict of a loader node for ``(lora_name, AdapterSpec, LoadReport)`` entries."""
    info, models = [], []
    for lora_name, spec, report in entries:
        info.extend(info_lines(spec.name, report))
        models.append(model_entry(lora_name, spec.sha256))
    return {"loradeck_info": info, "loradeck_models": models}
