"""The service's defaults have one source, its settings, which the CLI reads without loading the server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chroma_core.cli import build_parser as _parser
from chroma_core.errors import ConfigError
from chroma_core.server.settings import Limits, ServerSettings
from tests.conftest import ROOT


def test_the_cli_takes_the_services_defaults_from_its_settings(capsys):
    args = _parser().parse_args(["serve"])
    settings = ServerSettings()
    assert (args.host, args.port, args.persist_directory, args.log_level) == (
        settings.host,
        settings.port,
        settings.persist_directory,
        settings.log_level,
    )
    assert args.max_body_mb is None  # not given: Limits' own default applies, to the byte
    assert settings.limits == Limits() and Limits().max_body_mib == 256
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"default {settings.port}" in help_text and f"default {Limits().max_body_mib}" in help_text


def test_settings_refuse_an_unknown_log_level():
    with pytest.raises(ConfigError, match="log_level"):
        ServerSettings(log_level="loud")


def test_the_cli_loads_no_server_dependency_to_know_the_defaults():
    code = (
        "import sys\n"
        "from chroma_core.cli import build_parser as _parser\n"
        "_parser().parse_args(['serve'])\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'pydantic', 'starlette') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
