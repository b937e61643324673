"""The package's layering: no import cycles, the core never reaches the nodes or ComfyUI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parents[1]
# walked with their subpackages; plus the pack's top-level modules
PACKAGES = ("core", "nodes", "runner", "demo", "sweep")
MAX_MODULES = 15  # per folder of core/: a newcomer finds a concern by its folder name


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACK).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["loradeck", *parts])


def _modules() -> dict[str, Path]:
    found = {_module_name(path): path for path in sorted(PACK.glob("*.py"))}
    for package in PACKAGES:
        for path in sorted((PACK / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1] if node.level else []  # absolute imports name the full path
    return ".".join([*base, *(node.module.split(".") if node.module else [])])


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (at any depth of its code: lazy imports count too)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, is_package, node)
                targets = [f"{target}.{a.name}" for a in node.names] + [target]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target in modules and target != module:
                    graph[module].add(target)
                    break
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 100 and graph["loradeck.core.adapters.owner"]  # the walk really sees the package
    assert graph["loradeck.core.families.flux"]  # and the subpackages' own modules
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_core_imports_neither_the_nodes_nor_comfyui():
    graph = import_graph()
    core = [m for m in graph if m.startswith("loradeck.core")]
    assert not [(m, t) for m in core for t in graph[m] if not t.startswith("loradeck.core")]
    code = ("import loradeck.core, sys; "
            "bad = [m for m in sys.modules if m.startswith(('loradeck.nodes', 'folder_paths', 'comfy', 'server'))]; "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_core_is_a_map_of_small_folders():
    """Each folder of core/ holds a handful of modules (and every family is one folder of core/families/)."""
    crowded = {str(folder.relative_to(PACK)): n for folder in [PACK / "core", *(PACK / "core").rglob("*")]
               if folder.is_dir() and (n := len([p for p in folder.glob("*.py") if p.name != "__init__.py"]))
               > MAX_MODULES}
    assert crowded == {}
    families = PACK / "core" / "families"
    assert not [p.name for p in families.glob("*.py") if p.name != "__init__.py"]  # only the registry


def test_pyproject_installs_every_package_and_family_config():
    """A non-editable install gets every subpackage and every family's configs (the list is explicit)."""
    import tomllib

    setup = tomllib.loads((PACK / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, data = set(setup["packages"]), setup["package-data"]
    for package in PACKAGES:
        for init in (PACK / package).rglob("__init__.py"):
            assert _module_name(init) in listed, f"pyproject.toml's packages lacks {_module_name(init)}"
    for configs in (PACK / "core" / "families").glob("*/configs"):
        name = _module_name(configs.parent / "__init__.py")
        assert "configs/**/*.json" in data.get(name, []), f"pyproject.toml's package-data lacks {name}'s configs"


# What a node ID is made of: node_id() builds one (a plain `node_id` is a graph node's number), NODE_ID / LOADER(S)
# hold them, a literal spells one out.
ID_NAMES = {"NODE_ID", "LOADER", "LOADERS"}
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}


def _names_an_id(expr: ast.AST) -> bool:
    for sub in ast.walk(expr):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == "node_id":
            return True
        if isinstance(sub, ast.Name) and sub.id in ID_NAMES or isinstance(sub, ast.Attribute) and sub.attr in ID_NAMES:
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and "|LoRADeck" in sub.value:
            return True
    return False


def messages_naming_an_id(source: str, where: str = "<source>") -> list[str]:
    """The raise, log and VALIDATE_INPUTS return statements of `source` whose text is built from a node ID: what
    ComfyUI shows the user (the exception message and its traceback's line, the log in the error report, the
    queue-time reason)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        parts: list[ast.AST] = []
        if isinstance(node, ast.Raise) and node.exc is not None:
            parts = [node.exc]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOG_METHODS
              and isinstance(node.func.value, ast.Name) and node.func.value.id in {"logger", "log", "logging"}):
            parts = [*node.args, *(k.value for k in node.keywords)]
        elif isinstance(node, ast.FunctionDef) and node.name == "VALIDATE_INPUTS":
            parts = [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value is not None]
        found += [(part.lineno, where) for part in parts if _names_an_id(part)]
    return [f"{where}:{line}" for line, where in sorted(found)]


def test_no_message_names_a_node_by_its_id():
    """Errors, logs and queue-time reasons name nodes as the user sees them (display names, titles), never by their
    frozen IDs ("LoadLoRA|LoRADeck"): the frontends show these texts, and their error reports quote them."""
    found = [hit for package in ("nodes", "core") for path in sorted((PACK / package).rglob("*.py"))
             for hit in messages_naming_an_id(path.read_text(), str(path.relative_to(PACK)))]
    assert found == []


def test_the_id_finder_finds_ids_in_messages():
    source = '''
def f(name):
    raise ValueError(f"{NODE_ID}: bad {name}")
def g(node_id):
    logger.warning("%s failed", node_id("LoadLoRA"))
    logger.info("node %s failed", node_id)
class N:
    def VALIDATE_INPUTS(cls, x):
        return "LoadLoRA|LoRADeck: no"
def h():
    raise ValueError("no such file")
'''
    assert messages_naming_an_id(source) == ["<source>:3", "<source>:5", "<source>:9"]
