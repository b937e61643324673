"""UI-format workflow (what ComfyUI saves) -> API format (what it queues), as the frontend does it.

Handles links, widget values (with the extra control_after_generate value after ``seed``),
``Reroute``, ``Note``/``MarkdownNote``, ``PrimitiveNode``, and muted (mode 2) or bypassed
(mode 4) nodes, whose outputs pass through an input of the same type. A malformed node or link is
reported (one line each) and left out; node types are checked later, with the rest of the prompt.
"""

from __future__ import annotations

from .errors import WorkflowError

MUTED, BYPASSED = 2, 4
LINK_FIELDS = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _node_id_ok(value) -> bool:
    return _whole(value) or (isinstance(value, str) and bool(value))


def _link(raw):
    """(link id, (source node, source slot, target node, target slot, type)), or None when malformed."""
    if isinstance(raw, dict):
        raw = [raw.get(k) for k in LINK_FIELDS]
    if not isinstance(raw, (list, tuple)) or len(raw) < 6:
        return None
    link_id, src, src_slot, dst, dst_slot, kind = raw[:6]
    if not (_whole(link_id) and _node_id_ok(src) and _whole(src_slot) and _node_id_ok(dst) and _whole(dst_slot)):
        return None
    return link_id, (src, src_slot, dst, dst_slot, kind)


def _node_problem(node) -> str | None:
    if not isinstance(node, dict):
        return "not a node object"
    if not _node_id_ok(node.get("id")):
        return f"({node.get('type', 'no type')}) has no valid 'id'"
    if not isinstance(node.get("type"), str) or not node["type"]:
        return f"(id {node['id']}) has no 'type'"
    inputs = node.get("inputs") or []
    if not isinstance(inputs, list) or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in inputs):
        return f"(id {node['id']}, {node['type']}): 'inputs' is not a list of named inputs"
    if not isinstance(node.get("widgets_values") or [], (list, dict)):
        return f"(id {node['id']}, {node['type']}): 'widgets_values' is not a list"
    return None


class _Graph:
    def __init__(self, workflow: dict):
        from .registry import VIRTUAL

        self.virtual = VIRTUAL
        self.problems: list[str] = []
        self.nodes: dict = {}
        for index, node in enumerate(workflow["nodes"]):
            problem = _node_problem(node)
            if problem is None and node["id"] in self.nodes:
                problem = f"(id {node['id']}): another node has the same id"
            if problem:
                self.problems.append(f"nodes[{index}] {problem}")
            else:
                self.nodes[node["id"]] = node
        self.links = {}
        links = workflow.get("links") or []
        if not isinstance(links, list):
            self.problems.append("'links' is not a list")
            links = []
        for index, raw in enumerate(links):
            parsed = _link(raw)
            if parsed is None:
                self.problems.append(f"links[{index}]: not [id, from node, from slot, to node, to slot, type]: {raw!r}")
            else:
                self.links[parsed[0]] = parsed[1]

    def source(self, link_id, depth: int = 0):
        """('link', node id, slot), ('value', v) or None for the far end of a link."""
        if link_id is None or depth > 100 or link_id not in self.links:
            return None
        src, slot, _, _, kind = self.links[link_id]
        node = self.nodes.get(src)
        if node is None:
            return ("link", str(src), slot)  # the validation reports the missing node, with the input's name
        if node.get("mode") == MUTED:
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
    if cls is None:
        return {}  # an unknown node type: its widget names are unknown (it is reported by the validation)
    names = widget_names(cls)
    out = {}
    for name, value in zip(names, values or [], strict=False):
        if name is not CONTROL:
            out[name] = value
    return out


def _api_node(graph: _Graph, node: dict, cls) -> dict:
    inputs = _widget_values(node, cls)
    for item in node.get("inputs") or []:
        if item.get("link") is not None and item["link"] not in graph.links:
            graph.problems.append(f"node {node['id']} ({node['type']}): {item['name']}: link {item['link']!r} "
                                  "is not in the workflow's links")
        found = graph.source(item.get("link"))
        if found is None:
            if item.get("link") is not None and not item.get("widget"):
                inputs.pop(item["name"], None)
            continue
        inputs[item["name"]] = found[1] if found[0] == "value" else [found[1], found[2]]
    title = node.get("title") or getattr(cls, "DISPLAY_NAME", node["type"])
    return {"class_type": node["type"], "inputs": inputs, "_meta": {"title": title}}


def convert(workflow: dict) -> tuple[dict, list[str]]:
    """(API prompt, problems found in the UI graph, one line each); malformed nodes and links are left out."""
    from .registry import CLASSES

    definitions = workflow.get("definitions")
    if isinstance(definitions, dict) and definitions.get("subgraphs"):
        raise WorkflowError("this workflow uses subgraphs, which the headless runner does not run yet; "
                            "unpack them in ComfyUI (right-click > Unpack Subgraph) and save again")
    graph = _Graph(workflow)
    prompt = {}
    for node_id, node in sorted(graph.nodes.items(), key=lambda kv: (len(str(kv[0])), str(kv[0]))):
        if node["type"] in graph.virtual or node.get("mode") in (MUTED, BYPASSED):
            continue
        prompt[str(node_id)] = _api_node(graph, node, CLASSES.get(node["type"]))
    return prompt, graph.problems


def ui_to_api(workflow: dict) -> dict:
    """The API prompt of a UI workflow; WorkflowError listing every malformed node and link."""
    prompt, problems = convert(workflow)
    if problems:
        raise WorkflowError("\n".join(["the workflow file is malformed:", *(f"  {p}" for p in problems)]))
    return prompt
