"""The package's own import graph, read from the source (``ast``), never by importing it.

Three kinds of import statement, told apart by where they stand:

- **module level** (also inside ``try`` / ``if`` at module level): run when the module is first
  imported. A cycle among these makes the import order matter (a half-initialised module hands
  out names it does not have yet), so any cycle fails here, named module by module.
- **type only** (under ``if TYPE_CHECKING:``): never run; allowed in any direction.
- **lazy** (inside a function or method body): run on the first call. They are allowed, and are
  listed by :func:`test_lazy_imports_are_reported`, because the package relies on them for
  legitimate reasons: the triggerer imports a trigger module on its event loop, so a trigger and
  ``waiting`` must stay light and import the hook stack (``requests``, the batch engine...) off
  the loop or on first use; operators import the hook at ``execute`` so that parsing a DAG file
  stays cheap. A lazy import is *not* a way to hide a cycle: the report marks any lazy import
  whose target reaches back to the importer through module-level imports, so a reviewer can see it.

Imports made by name at run time (``importlib.import_module("...")``) are not statements and are
not read here.

The emulator (``airflow_fb_async/emulator``) shares no code with the rest of the package in either
direction, and uses only the standard library (it starts in a fraction of a second, without Airflow).
It is held to a stricter rule than the rest: no cycle among its modules through *any* import, lazy
and type-only ones included. It has no import-time cost to save, so its layers point one way:
leaves (``errors``, ``core``, ``model``...) <- ``store`` <- ``views`` <- handlers (typed against the
``context.Context`` protocol, never the engine) <- ``routes`` <- ``engine`` <- ``server``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "airflow_fb_async"
EMULATOR = "airflow_fb_async.emulator"

MODULE_LEVEL = "module"
TYPE_ONLY = "type"
LAZY = "lazy"
ALL_KINDS = frozenset({MODULE_LEVEL, TYPE_ONLY, LAZY})


@dataclass(frozen=True)
class Edge:
    """One import statement of a package module naming another module (in the package or not)."""

    source: str
    target: str
    kind: str
    line: int


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted name -> file of every ``.py`` module under ``package_dir`` (a package is its ``__init__``)."""
    root = package_dir.parent
    names: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The modules an import statement loads: ``from a import b`` is ``a.b`` when that is a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        origin = ".".join([*base, node.module] if node.module else base)
    else:
        origin = node.module or ""
    found = []
    for alias in node.names:
        sub = f"{origin}.{alias.name}"
        target = sub if sub in known else origin
        if target not in found:
            found.append(target)
    return found


def import_edges(package_dir: Path) -> list[Edge]:
    """Every import statement of every module under ``package_dir``, classified by where it stands."""
    modules = module_names(package_dir)
    known = set(modules)
    edges: list[Edge] = []

    def visit(nodes: list[ast.AST], module: str, is_package: bool, kind: str) -> None:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, module, is_package, known):
                    edges.append(Edge(module, target, kind, node.lineno))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(list(node.body), module, is_package, LAZY)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(list(node.body), module, is_package, TYPE_ONLY if kind == MODULE_LEVEL else kind)
                visit(list(node.orelse), module, is_package, kind)
            else:  # class bodies, try/except, with, for, if, match: same kind as where they stand
                inner = ast.iter_child_nodes(node)
                visit(
                    [n for n in inner if isinstance(n, (ast.stmt, ast.excepthandler, ast.match_case))],
                    module,
                    is_package,
                    kind,
                )

    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        visit(list(tree.body), module, path.name == "__init__.py", MODULE_LEVEL)
    return edges


def _in_package(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


def module_graph(
    edges: list[Edge], package: str, kinds: frozenset[str] = frozenset({MODULE_LEVEL})
) -> dict[str, set[str]]:
    """Imports of the given ``kinds`` (module-level by default) among the package's own modules,
    as adjacency sets."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if not _in_package(edge.source, package):
            continue
        graph.setdefault(edge.source, set())
        if edge.kind in kinds and _in_package(edge.target, package) and edge.target != edge.source:
            graph[edge.source].add(edge.target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), each as a path
    ``[a, b, ..., a]`` that a reader can follow import by import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                strongconnect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return [_cycle_through(component, graph) for component in components]


def _cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, set()) & members):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {component}")  # a component always has one


def reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    """Whether ``goal`` is imported, directly or not, when ``start`` is (module-level imports)."""
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


EDGES = import_edges(PACKAGE_DIR)


def test_no_cycle_among_module_level_imports() -> None:
    cycles = find_cycles(module_graph(EDGES, "airflow_fb_async"))
    assert cycles == [], "import cycles among module-level imports:\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


def test_no_cycle_in_the_emulator_through_any_import() -> None:
    """Lazy (function-level) and type-only imports count too: a cycle through them is a cycle
    postponed, and the emulator's layers need none (see the module docstring)."""
    graph = module_graph(EDGES, EMULATOR, ALL_KINDS)
    assert len(graph) > 10, "the emulator's modules were not read"
    cycles = find_cycles(graph)
    assert cycles == [], "import cycles in the emulator (lazy and type-only imports included):\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


def test_lazy_imports_are_reported() -> None:
    """Lazy in-package imports are allowed; this lists them (``pytest -rP``) and marks those that
    close a cycle, which a reviewer should question (a cycle postponed, not removed)."""
    graph = module_graph(EDGES, "airflow_fb_async")
    lazy = [e for e in EDGES if e.kind == LAZY and _in_package(e.target, "airflow_fb_async")]
    for edge in lazy:
        closes = " (closes a cycle)" if reaches(graph, edge.target, edge.source) else ""
        print(f"lazy import: {edge.source}:{edge.line} -> {edge.target}{closes}")
    assert all(e.target in module_names(PACKAGE_DIR) or e.target == "airflow_fb_async" for e in lazy), (
        "a lazy import names a module that does not exist"
    )


def test_the_emulator_shares_no_code_with_the_rest_of_the_package() -> None:
    inward = [
        e for e in EDGES if _in_package(e.source, EMULATOR) and _in_package(e.target, "airflow_fb_async")
    ]
    leaks = [f"{e.source}:{e.line} -> {e.target}" for e in inward if not _in_package(e.target, EMULATOR)]
    assert leaks == [], f"the emulator imports from the rest of the package: {leaks}"
    outward = [e for e in EDGES if not _in_package(e.source, EMULATOR) and _in_package(e.target, EMULATOR)]
    assert [f"{e.source}:{e.line}" for e in outward] == [], "package code imports the emulator"


def test_the_emulator_uses_only_the_standard_library() -> None:
    """So it starts without Airflow and in a fraction of a second (docs/emulator.md)."""
    third_party = [
        f"{e.source}:{e.line} -> {e.target}"
        for e in EDGES
        if _in_package(e.source, EMULATOR)
        and not _in_package(e.target, EMULATOR)
        and e.target.split(".")[0] not in sys.stdlib_module_names
        and e.target != "__future__"
    ]
    assert third_party == [], f"the emulator imports outside the standard library: {third_party}"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


@pytest.mark.parametrize(
    ("b_source", "expected"),
    [
        ("from pkg.sub import a\n", [["pkg.sub.a", "pkg.sub.b", "pkg.sub.a"]]),
        ("from . import a\n", [["pkg.sub.a", "pkg.sub.b", "pkg.sub.a"]]),
        ("import pkg.sub.a\n", [["pkg.sub.a", "pkg.sub.b", "pkg.sub.a"]]),
        (
            "try:\n    from .a import X\nexcept ImportError:\n    pass\n",
            [["pkg.sub.a", "pkg.sub.b", "pkg.sub.a"]],
        ),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import X\n", []),
        ("def f():\n    from .a import X\n", []),
        ("class C:\n    def f(self):\n        from ..sub.a import X\n", []),
    ],
    ids=["absolute", "relative-package", "import", "in-try", "type-checking", "lazy", "lazy-method"],
)
def test_the_checker_finds_a_cycle_however_it_is_written(
    tmp_path: Path, b_source: str, expected: object
) -> None:
    """The checker itself: a two-module cycle is found in every module-level spelling, named as a
    path, and type-only or lazy imports are not counted (but are seen, with their kind)."""
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/sub/a.py": "from pkg.sub.b import Y\n",
            "pkg/sub/b.py": b_source,
        },
    )
    edges = import_edges(package)
    assert find_cycles(module_graph(edges, "pkg")) == expected
    back = [e for e in edges if e.source == "pkg.sub.b" and e.target == "pkg.sub.a"]
    assert len(back) == 1
    # The emulator's stricter check counts every kind: the cycle is found however it is written.
    assert find_cycles(module_graph(edges, "pkg", ALL_KINDS)) == [["pkg.sub.a", "pkg.sub.b", "pkg.sub.a"]]


def test_the_checker_names_a_longer_cycle_and_ignores_outside_modules(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "import json\n",
            "pkg/a.py": "from pkg import b\nimport os\n",
            "pkg/b.py": "from pkg.c import Z\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "from pkg import a\n",
        },
    )
    assert find_cycles(module_graph(import_edges(package), "pkg")) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
