"""The shape of the code: no import cycle among the project's modules, and the library never imports the harness
(methods/ and metrics/ stand on their own; harness/ uses them). Built from the source with ``ast``, so lazy
(function-level) imports count as much as top-level ones."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("methods", "metrics", "harness")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against ``importer``)."""
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Project module → the project modules it imports (``from pkg import name`` counts as importing ``pkg.name``
    when that is a module, else ``pkg``)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}

    def project(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(name, is_package, node)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            for target in targets:
                found = project(target)
                if found is None:
                    continue
                # importing a.b.c runs a/__init__ and a/b/__init__ first: edges to those too (but not to the
                # importer's own packages, which Python has already started)
                for module in {found} | parents(found):
                    if module != name and module not in parents(name):
                        graph[name].add(module)
    return graph


def parents(module: str) -> set[str]:
    """The packages whose ``__init__`` runs before ``module`` (importing a.b.c imports a and a.b first)."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (as the list of its modules, first repeated at the end), or None. An edge into a
    package's own ``__init__`` from inside that package is not followed: Python runs that ``__init__`` first (and
    :func:`import_graph` adds none)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in parents(node):
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_relative_lazy_and_package_imports():
    graph = import_graph()
    assert "methods.errors" in graph["methods._factory"] or "methods.errors" in graph["methods.weights"]
    assert "harness.errors" in graph["harness.run"]  # a relative `from .errors import ...`
    assert "methods" in graph["harness.run"]  # an absolute `from methods import ...`
    assert {"harness.figures.charts", "harness.figures"} <= graph["harness.complexity.sweep"]  # and its package


def test_find_cycle_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert find_cycle({"p": {"p.x"}, "p.x": {"p"}}) is None  # p.x imports its own package: not a cycle


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


@pytest.mark.parametrize("library", ["methods", "metrics"])
def test_the_library_never_imports_the_harness(library):
    graph = import_graph()
    offending = sorted(f"{m} → {t}" for m, targets in graph.items() if m.split(".")[0] == library
                       for t in targets if t.split(".")[0] == "harness")
    assert not offending, "the library imports the harness: " + ", ".join(offending)


def test_methods_does_not_import_metrics():
    graph = import_graph()
    offending = sorted(f"{m} → {t}" for m, targets in graph.items() if m.startswith("methods")
                       for t in targets if t.startswith("metrics"))
    assert not offending, ", ".join(offending)


def test_nothing_outside_the_cli_imports_it():
    graph = import_graph()
    offending = sorted(f"{m} → {t}" for m, targets in graph.items() if not m.startswith(("harness.cli", "harness.__main__"))
                       for t in targets if t.startswith("harness.cli"))
    assert not offending, "the library imports the command line: " + ", ".join(offending)


MAX_MODULE_LINES = 520
MAX_FUNCTION_LINES = 80


def test_rooms_stay_small():
    """One concept per module: no module over ~500 lines, no function over 80."""
    too_long = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if len(text.splitlines()) > MAX_MODULE_LINES:
                too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, "; ".join(too_long)
