"""The server reaches storage through the ``Store`` port alone (store/port.py): from
``waystation.store`` it imports the port module and ``open_store``, nothing else, so what a
route may ask of storage is what the port states (read from the source)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "waystation" / "server"
ALLOWED = {"waystation.store.port", "waystation.store:open_store"}


def _store_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("waystation.store")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "waystation.store"
        ):
            if node.module == "waystation.store":
                found |= {f"waystation.store:{a.name}" for a in node.names}
            else:
                found.add(node.module or "")
    return found


def test_the_server_imports_from_the_store_only_the_port_and_open_store() -> None:
    reached = {
        f"{path.relative_to(SERVER)}: {name}"
        for path in sorted(SERVER.rglob("*.py"))
        for name in _store_imports(path) - ALLOWED
    }
    assert reached == set()


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "route.py"
    module.write_text(
        "from waystation.store.pull import feed_state\n"
        "from waystation.store import Database, open_store\n"
        "import waystation.store.notify\n"
    )
    assert _store_imports(module) - ALLOWED == {
        "waystation.store.pull",
        "waystation.store:Database",
        "waystation.store.notify",
    }
