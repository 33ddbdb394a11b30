"""The command's names: the ``chroma-ml`` console script and ``python -m chroma`` (issue 18, item 11)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from tests.conftest import ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def test_the_console_script_is_our_own_name_and_runs_the_cli():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    # `chroma` is chromadb's script too: whichever package is installed last would own it.
    assert scripts == {"chroma-ml": "chroma_core.cli:main"}
    module, _, name = scripts["chroma-ml"].partition(":")
    main = getattr(importlib.import_module(module), name)
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0


def test_python_dash_m_chroma_still_works():
    out = subprocess.run([sys.executable, "-m", "chroma", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "serve" in out.stdout
