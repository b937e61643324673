"""The package's layering: no import cycles, the core never reaches the nodes or ComfyUI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "nodes", "runner", "demo")  # walked with their subpackages; plus the pack's top-level modules
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
