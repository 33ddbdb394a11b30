"""The arrows that must never exist (docs/architecture.md), checked on the code itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports() -> dict[str, set[str]]:
    """Every chroma module -> the chroma modules it imports (at any depth of the file, lazy imports included)."""
    out: dict[str, set[str]] = {}
    for package in ("chroma", "chroma_core", "chroma_integrations"):
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module)
                elif isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)
            out[module] = {m for m in found if m.split(".")[0] in ("chroma", "chroma_core", "chroma_integrations")}
    return out


IMPORTS = _imports()


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("chroma_core.engine", "chroma_core.transport"),
        ("chroma_core.engine", "chroma_core.server"),
        ("chroma_core.engine", "chroma_core.sessions"),
        ("chroma_core.engine", "chroma_core.delivery"),
        ("chroma_core.transport.http", "chroma_core.engine"),
        ("chroma_core.transport.base", "chroma_core.engine"),
        ("chroma_core.delivery", "chroma_core.engine"),
        ("chroma_core.sessions", "chroma_core.engine"),
        ("chroma_core", "chroma_integrations"),
        ("chroma_core", "chroma"),
        # The server's rooms the client and the CLI read hold no engine: the wire contract, settings, JSON models.
        ("chroma_core.server.wire", "chroma_core.engine"),
        ("chroma_core.server.settings", "chroma_core.engine"),
        ("chroma_core.server.schema", "chroma_core.engine"),
        # The engine works over the Store contract; only engine.py's open_engine names the SQLite store.
        *[
            (user, f"chroma_core.engine.{sqlite}")
            for user in ("chroma_core.engine.scoring", "chroma_core.engine.selection", "chroma_core.engine.search")
            for sqlite in ("sqlite_store", "sqlite_schema", "sqlite_files", "sqlite_index", "sqlite_delete")
        ],
    ],
)
def test_no_arrow(importer, forbidden):
    bad = sorted(
        f"{m} -> {i}"
        for m, imported in IMPORTS.items()
        if _under(m, importer)
        for i in imported
        if _under(i, forbidden) and not (forbidden == "chroma" and i.startswith("chroma_"))
    )
    assert not bad, bad


def test_outside_the_server_only_its_wire_contract_and_settings_are_imported():
    """The client shares the wire contract, the CLI reads the settings (and starts ``run`` on ``serve``, the app
    over the embedded engine on ``ui``)."""
    allowed = {"chroma_core.server.wire", "chroma_core.server.settings"}
    starts = {("chroma_core.cli.serve", "chroma_core.server.run"), ("chroma_core.cli.ui", "chroma_core.server.app")}
    bad = sorted(
        f"{m} -> {i}"
        for m, imported in IMPORTS.items()
        if not _under(m, "chroma_core.server")
        for i in imported
        if _under(i, "chroma_core.server")
        and i not in allowed
        and (m, i) not in starts
    )
    assert not bad, bad


def test_public_types_come_from_one_module():
    """Nothing imports the public value types from the engine; the types module imports nothing above it."""
    imported = set().union(*(i for m, i in IMPORTS.items() if _under(m, "chroma_core.types")))
    outside = {i for i in imported if not _under(i, "chroma_core.types")}
    assert outside <= {
        "chroma_core.embedding_set",
        "chroma_core.errors",
        "chroma_core.vectors",
        "chroma_core.json_text",
    }
    assert IMPORTS["chroma_core.records"] <= {"chroma_core.embedding_set", "chroma_core.types", "chroma_core.vectors"}


def test_a_client_only_import_of_the_http_transport_loads_no_engine():
    code = (
        "import sys, chroma_core.transport.http, chroma_core.transport\n"
        "print([m for m in sys.modules if m.startswith('chroma_core.engine') or m in ('sqlite3', 'usearch')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_the_types_module_imports_nothing_heavier_than_numpy():
    code = (
        "import sys; before = set(sys.modules); import chroma_core.types\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - {'numpy', 'chroma_core'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    leaked = [m for m in eval(out.stdout) if not m.startswith("_") and m not in sys.stdlib_module_names]
    assert leaked == []


def test_the_guard_and_the_generic_worker_stand_alone():
    """The logger and the guard import nothing else of ours (everything may use them); the worker only those."""
    assert IMPORTS["chroma_core.logs"] == set()
    assert IMPORTS["chroma_core.guard"] <= {"chroma_core.logs"}
    assert IMPORTS["chroma_core.delivery.worker"] <= {"chroma_core.guard", "chroma_core.logs"}


def test_only_the_sqlite_store_uses_sqlite():
    """SQL and files stay behind the Store contract: the rest of the engine could run over any store."""
    users = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "chroma_core").rglob("*.py")
        if any(
            (isinstance(node, ast.Import) and any(a.name == "sqlite3" for a in node.names))
            or (isinstance(node, ast.ImportFrom) and node.module == "sqlite3")
            for node in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert users == [f"chroma_core.engine.sqlite_{m}" for m in ("delete", "ingest", "schema", "store")]
