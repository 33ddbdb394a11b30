"""The ``chroma`` logger: one prefix, whoever formats it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WARN = "from chroma_core.logs import logger\nlogger.warning('the service at %s did not answer', 'x')\n"


def _stderr(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_without_logging_configured_a_warning_says_where_it_comes_from():
    assert _stderr(WARN) == "chroma: the service at x did not answer\n"
    assert _stderr("from chroma_core.logs import logger\nlogger.info('quiet')\n") == ""  # below WARNING


def test_with_logging_configured_the_application_formats_it_once():
    err = _stderr("import logging\nlogging.basicConfig()\n" + WARN)
    assert err == "WARNING:chroma:the service at x did not answer\n"  # not WARNING:chroma:chroma: ...


def test_no_log_message_carries_its_own_prefix():
    bad = []
    for path in [*ROOT.glob("chroma_core/**/*.py"), *ROOT.glob("chroma_integrations/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in {"debug", "info", "warning", "error", "exception", "critical", "log", "_warn"}:
                continue
            for arg in node.args[:2]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("chroma:"):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad
