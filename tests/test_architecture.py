"""The rooms keep their doors: imports inside ``waystation/`` run one way, with no cycle,
and each room reaches only the rooms below it (docs/architecture.md).

Strict on purpose: imports made only for type checking (``if TYPE_CHECKING:``) and imports
inside functions count too — a cycle there is still a flow that calls back, two modules
that cannot be read apart. A package importing its own submodules (its door) is an edge
like any other, so a submodule importing back from its package's ``__init__`` is a cycle.
Read from the source with ``ast``, so nothing is imported to check it (and a cycle that
would only break at import time in some order is found all the same)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = "waystation"
PACKAGE = Path(__file__).resolve().parents[1] / ROOT

# What each room may import, besides itself, the root package (``waystation``: its name and
# version, importing nothing) and anything outside the package. A room is the first name
# under ``waystation``: a subpackage, or a top-level module such as ``demo``.
MAY_IMPORT: dict[str, set[str]] = {
    "schemas": set(),  # data only: the built-in schema files, read by core/schema.py
    "core": {"schemas"},  # pure: no I/O, nothing of the package above it
    "store": {"core"},
    "server": {"core", "store"},
    "client": {"core"},  # the SDK ships without the server
    "demo": {"core", "store", "server"},  # seeds and runs a demo server
    "cli": {"core", "store", "server", "client", "demo"},
    "__main__": {"cli"},  # ``python -m waystation``
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package's modules ``node`` imports (a ``from package import name`` names the
    submodule when there is one, else the package, as import-linter and grimp count it)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names} & MODULES.keys()
    base = node.module or ""
    if node.level:
        package = module.split(".")
        if MODULES[module].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    found = set()
    for alias in node.names:
        full = f"{base}.{alias.name}"
        found.add(full if full in MODULES else base)
    return found & MODULES.keys()


def imports_of(module: str, source: str) -> set[str]:
    """The package's modules that ``source`` (the text of ``module``) imports, anywhere in
    it: at the top, under ``if TYPE_CHECKING:``, inside functions."""
    deps: set[str] = set()
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            deps |= _imported(module, node)
    return deps - {module}


GRAPH = {module: imports_of(module, path.read_text("utf-8")) for module, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle: the strongly connected components of more than one module
    (Tarjan), each sorted, so a failure names all of them at once (graphlib names one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _room(module: str) -> str | None:
    """The room of ``module``; None for the root package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_import_cycle_in_the_package() -> None:
    found = cycles(GRAPH)
    assert found == [], "import cycles:\n" + "\n".join(
        "  "
        + " <-> ".join(component)
        + "\n    "
        + "\n    ".join(
            f"{module} imports {dep}"
            for module in component
            for dep in sorted(GRAPH[module] & set(component))
        )
        for component in found
    )


def test_each_room_imports_only_the_rooms_below_it() -> None:
    wrong = sorted(
        f"{module} ({room}) imports {dep} ({other})"
        for module, deps in GRAPH.items()
        if (room := _room(module)) is not None
        for dep in deps
        if (other := _room(dep)) is not None
        and other != room
        and other not in MAY_IMPORT.get(room, set())
    )
    assert wrong == []


def test_every_module_is_in_a_room_with_a_rule() -> None:
    # a new room (or top-level module) must say what it may import before it imports
    rooms = {_room(module) for module in GRAPH} - {None}
    assert rooms == MAY_IMPORT.keys()


def test_the_root_package_imports_nothing_of_the_package() -> None:
    # every room may import the root (its version), so the root must stay a leaf
    assert GRAPH[ROOT] == set()


def test_the_walk_sees_the_package() -> None:
    assert {
        "waystation.core.apply",
        "waystation.store.push",
        "waystation.client.replica",
        "waystation.server.routes.sync",
    } <= GRAPH.keys()
    assert "waystation.core.apply" in GRAPH["waystation.store.push"]
    assert "waystation.server.app" in GRAPH["waystation.server"]  # a package's door


def test_the_walk_counts_every_kind_of_import() -> None:
    source = """
from typing import TYPE_CHECKING
import waystation.core.hlc
from waystation.store import database
from . import sequence
from ..core import ids
from ..core.merge import merge
if TYPE_CHECKING:
    from waystation.client.replica import Replica
def later():
    from waystation.server import Settings
"""
    assert imports_of("waystation.store.push", source) == {
        "waystation.core.hlc",
        "waystation.store.database",
        "waystation.store.sequence",
        "waystation.core.ids",
        "waystation.core.merge",
        "waystation.client.replica",
        "waystation.server",
    }


def test_the_cycle_finder_finds_every_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": {"a"}}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
