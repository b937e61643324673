"""UI-format workflow (what ComfyUI saves) -> API format (what it queues), as the frontend does it.

Handles links, widget values (with the extra control_after_generate value after ``seed``),
``Reroute``, ``Note``/``MarkdownNote``, ``PrimitiveNode``, and muted (mode 2) or bypassed
(mode 4) nodes, whose outputs pass through an input of the same type.
"""

from __future__ import annotations

from .errors import WorkflowError

MUTED, BYPASSED = 2, 4


def _links(workflow: dict) -> dict[int, tuple]:
    links = {}
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            link = [link.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")]
        link_id, src, src_slot, dst, dst_slot, kind = link[:6]
        links[int(link_id)] = (src, int(src_slot), dst, int(dst_slot), kind)
    return links


class _Graph:
    def __init__(self, workflow: dict):
        from .registry import VIRTUAL

        self.virtual = VIRTUAL
        self.nodes = {n["id"]: n for n in workflow["nodes"]}
        self.links = _links(workflow)

    def source(self, link_id, depth: int = 0):
        """('link', node id, slot), ('value', v) or None for the far end of a link."""
        if link_id is None or depth > 100 or int(link_id) not in self.links:
            return None
        src, slot, _, _, kind = self.links[int(link_id)]
        node = self.nodes.get(src)
        if node is None or node.get("mode") == MUTED:
            return None
        if node["type"] == "Reroute":
            return self.source(_input_link(node, 0), depth + 1)
        if node["type"] == "PrimitiveNode":
            values = node.get("widgets_values") or [None]
            return ("value", values[0])
        if node.get("mode") == BYPASSED:
            return self.source(self._passthrough(node, slot, kind), depth + 1)
        return ("link", str(src), slot)

    @staticmethod
    def _passthrough(node: dict, slot: int, kind):
        inputs = node.get("inputs") or []
        if slot < len(inputs) and inputs[slot].get("type") == kind and inputs[slot].get("link") is not None:
            return inputs[slot]["link"]
        for item in inputs:
            if item.get("type") == kind and item.get("link") is not None:
                return item["link"]
        return None


def _input_link(node: dict, index: int):
    inputs = node.get("inputs") or []
    return inputs[index].get("link") if index < len(inputs) else None


def _widget_values(node: dict, cls) -> dict:
    from .registry import CONTROL, widget_names

    values = node.get("widgets_values")
    if isinstance(values, dict):
        return dict(values)
    names = widget_names(cls)
    out = {}
    for name, value in zip(names, values or [], strict=False):
        if name is not CONTROL:
            out[name] = value
    return out


def _check_supported(graph: _Graph) -> None:
    from .registry import CLASSES

    unknown = sorted({f"{n['type']} (node {i})" for i, n in graph.nodes.items()
                      if n["type"] not in CLASSES and n["type"] not in graph.virtual
                      and n.get("mode") not in (MUTED, BYPASSED)})
    if unknown:
        raise WorkflowError("these nodes cannot run headless: " + ", ".join(unknown) +
                            ". The runner executes LoRA Deck nodes plus LoadImage, SaveImage and PreviewImage; "
                            "run this workflow in ComfyUI instead.")


def ui_to_api(workflow: dict) -> dict:
    from .registry import CLASSES

    if workflow.get("definitions", {}).get("subgraphs"):
        raise WorkflowError("this workflow uses subgraphs, which the headless runner does not run yet; "
                            "unpack them in ComfyUI (right-click > Unpack Subgraph) and save again")
    graph = _Graph(workflow)
    _check_supported(graph)
    prompt = {}
    for node_id, node in sorted(graph.nodes.items(), key=lambda kv: int(kv[0])):
        if node["type"] in graph.virtual or node.get("mode") in (MUTED, BYPASSED):
            continue
        cls = CLASSES[node["type"]]
        inputs = _widget_values(node, cls)
        for item in node.get("inputs") or []:
            found = graph.source(item.get("link"))
            if found is None:
                if item.get("link") is not None and not item.get("widget"):
                    inputs.pop(item["name"], None)
                continue
            inputs[item["name"]] = found[1] if found[0] == "value" else [found[1], found[2]]
        title = node.get("title") or getattr(cls, "DISPLAY_NAME", node["type"])
        prompt[str(node_id)] = {"class_type": node["type"], "inputs": inputs, "_meta": {"title": title}}
    return prompt
