"""The tree keeps the shape docs/architecture.md draws: read from the code's own imports.

* no import circle between modules, nor between the packages they sit in;
* each package imports only packages of its layer or below (LAYERS, bottom first);
* no module imports a private name (``_x``) of another;
* the wiring rules: agents do not know the graph, memory does not know the run.

Function-level imports count as much as top-level ones: a deferred import still ties the two.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The installed layout: setuptools maps these folders into the caredio namespace.
FOLDERS = {"caredio": "caredio", "agents": "caredio.agents", "graph": "caredio.graph",
           "memory": "caredio.memory", "prompts": "caredio.prompts", "recipes": "caredio.recipes"}
# Packages from the bottom up; a package may import its own layer and the ones below.
# ``caredio`` is the core modules directly in caredio/ (errors, culture names, threads, stats…).
LAYERS: list[set[str]] = [
    {"caredio", "caredio.config"},
    {"caredio.rundir", "caredio.prompts"},
    {"caredio.memory", "caredio.llm", "caredio.tracing"},
    {"caredio.agents"},
    {"caredio.graph"},
    {"caredio.run", "caredio.run.executors"},
    {"caredio.evaluation", "caredio.tools", "caredio.review"},
    {"caredio.cli", "caredio.recipes"},
]


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every caredio import of the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("caredio"):
            names = [alias.name for alias in node.names]
            # `from caredio.llm import embedded` imports a module, not a name
            submodules = [n for n in names if f"{node.module}.{n}" in known]
            for sub in submodules:
                found.append((f"{node.module}.{sub}", [], node.lineno))
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                found.append((node.module, rest, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names if alias.name.startswith("caredio")]
    return found


def package_of(module: str, known: dict[str, Path]) -> str:
    path = known[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def graph() -> tuple[dict[str, set[str]], dict[str, Path]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in known.items():
        for target, _, _ in imports(path, known):
            if target in known and target != module:
                edges[module].add(target)
    return edges, known


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_another_in_a_circle() -> None:
    edges, _ = graph()
    assert cycles(edges) == []


def test_no_package_imports_another_in_a_circle() -> None:
    edges, known = graph()
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in edges.items():
        for target in targets:
            a, b = package_of(module, known), package_of(target, known)
            if a != b and not b.startswith(a + ".") and not a.startswith(b + "."):
                packages[a].add(b)
    assert cycles(packages) == []


def test_each_package_imports_only_its_layer_and_below() -> None:
    edges, known = graph()
    layer = {package: level for level, group in enumerate(LAYERS) for package in group}
    wrong = []
    for module, targets in edges.items():
        here = package_of(module, known)
        assert here in layer, f"{here} is in no layer of tests/test_architecture.py"
        for target in targets:
            there = package_of(target, known)
            if layer[there] > layer[here]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_module_imports_a_private_name_of_another() -> None:
    known = modules()
    private = [f"{path.relative_to(ROOT)}:{line}: {name} from {target}"
               for module, path in known.items() for target, names, line in imports(path, known)
               for name in names if name.startswith("_") and not name.endswith("__") and target != module]
    assert private == []


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_agents_do_not_know_the_graph_and_memory_does_not_know_the_run() -> None:
    edges, _ = graph()
    for module, targets in edges.items():
        if within(module, "caredio.agents"):
            assert not any(within(t, "caredio.graph", "caredio.run") for t in targets), module
        if within(module, "caredio.memory"):
            assert not any(within(t, "caredio.graph", "caredio.run", "caredio.agents") for t in targets), module


def test_no_package_is_a_re_export_hub() -> None:
    """A package's __init__ says what the package holds; it imports nothing to pass it on (a
    name is imported from the module that defines it). prompts/ is a module in package form."""
    hubs = [str(path.relative_to(ROOT)) for module, path in modules().items()
            if path.name == "__init__.py" and module != "caredio.prompts"
            and imports(path, modules())]
    assert hubs == []
