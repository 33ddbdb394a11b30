"""Schemathesis against the running service's /openapi.json: no 500s, no response that breaks the schema.

Its CLI is driven as a subprocess: the pytest plugin of schemathesis 4 does not load under pytest 9.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ChromaServer

pytestmark = pytest.mark.slow


def test_api_conforms_to_its_openapi_document(tmp_path):
    exe = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    server = ChromaServer(tmp_path / "data").start()
    try:
        out = subprocess.run(
            [
                exe,
                "run",
                server.url + "/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--max-examples",
                "40",
                "--seed",
                "1",
                "--workers",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:] + server.log.read_text()[-4000:]
    assert "/v1/batches" in out.stdout and "/v1/sets/{set_id}/query" in out.stdout


def test_the_query_route_lists_both_of_its_body_forms(tmp_path):
    from chroma_core.server.app import create_app
    from chroma_core.server.wire import QUERY_CONTENT_TYPE

    doc = create_app(tmp_path).openapi()
    content = doc["paths"]["/v1/sets/{set_id}/query"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", QUERY_CONTENT_TYPE}
    assert content[QUERY_CONTENT_TYPE]["schema"] == {"type": "string", "format": "binary"}
    assert content["application/json"]["schema"]["required"] == ["embeddings"]
