from __future__ import annotations

import subprocess
import sys

import chroma


def test_all_is_sorted_and_complete():
    public = {name for name in dir(chroma) if not name.startswith("_")} - {"chroma_core"}
    assert set(chroma.__all__) - {"__version__"} == public
    assert chroma.__all__ == sorted(chroma.__all__)


def test_core_never_imports_ml_frameworks():
    code = (
        "import sys, pkgutil, importlib, chroma, chroma_core\n"
        "server_only = ('chroma_core.server.app', 'chroma_core.server.run')\n"
        "for m in pkgutil.walk_packages(chroma_core.__path__, 'chroma_core.'):\n"
        "    if m.name not in server_only:\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in ('torch', 'transformers', 'mlflow', 'fastapi', 'uvicorn', 'pydantic') if m in sys.modules]\n"
        "importlib.import_module('chroma_core.server.app')\n"
        "bad += [m for m in ('torch', 'transformers', 'mlflow') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_m_chroma_help():
    out = subprocess.run([sys.executable, "-m", "chroma", "--help"], capture_output=True, text=True, check=True)
    assert "upload-training" in out.stdout and "should-upload" in out.stdout
