from __future__ import annotations

import subprocess
import sys

import pytest

import chroma


def test_all_is_sorted_and_complete():
    public = {name for name in dir(chroma) if not name.startswith("_")} - {"chroma_core"}
    assert set(chroma.__all__) - {"__version__"} == public
    assert chroma.__all__ == sorted(chroma.__all__)


# The server's modules that need its extra (FastAPI, uvicorn); wire, settings and auth need none.
SERVER_ONLY = (
    "chroma_core.server.app",
    "chroma_core.server.body",
    "chroma_core.server.duplicates",
    "chroma_core.server.errors",
    "chroma_core.server.gate",
    "chroma_core.server.routes",
    "chroma_core.server.metrics",
    "chroma_core.server.protocol",
    "chroma_core.server.query_body",
    "chroma_core.server.routes_ui",
    "chroma_core.server.routes_watch",
    "chroma_core.server.run",
    "chroma_core.server.schema",
    "chroma_core.server.schema_watch",
)


def test_core_never_imports_ml_frameworks():
    code = (
        "import sys, pkgutil, importlib, chroma, chroma_core\n"
        f"server_only = {SERVER_ONLY!r}\n"
        "for m in pkgutil.walk_packages(chroma_core.__path__, 'chroma_core.'):\n"
        "    if m.name not in server_only:\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in ('torch', 'transformers', 'mlflow', 'fastapi', 'uvicorn', 'pydantic') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_server_imports_no_ml_framework():
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    code = (
        "import sys, importlib\n"
        f"for m in {SERVER_ONLY!r}:\n"
        "    importlib.import_module(m)\n"
        "print([m for m in ('torch', 'transformers', 'mlflow') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_m_chroma_help():
    out = subprocess.run([sys.executable, "-m", "chroma", "--help"], capture_output=True, text=True, check=True)
    assert "upload-training" in out.stdout and "should-upload" in out.stdout
