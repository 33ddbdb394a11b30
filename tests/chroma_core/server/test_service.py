"""The service, over real HTTP on 127.0.0.1, through the real transport and CLI.

Most tests take a fresh application on the module's shared server (``chroma_server``, ``keyed_server``); the
ones that need a server without keys, other flags, or a server to stop start their own.
"""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import requests

import chroma
from chroma_core.batch_format import write_batch
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import BatchHeader, Records, new_batch_id
from tests.conftest import ROOT, SET, ChromaServer, clusters

pytestmark = pytest.mark.slow
SET_ID = chroma.embedding_set_id(SET)


def train(url: str, api_key: str | None = None, n_per: int = 40, dim: int = 16, set_dict=SET):
    x, labels, _ = clusters(n_per=n_per, dim=dim)
    with chroma.TrainingSession(embedding_set=set_dict, chroma_server_url=url, api_key=api_key) as s:
        s.log(
            input_uri=[f"/t/{i}" for i in range(len(x))],
            embedding=x,
            label=labels,
            inferences=[{"label": lab, "score": 0.9} for lab in labels],
        )
    return x


def test_seed_examples_against_the_service(chroma_server, tmp_path):
    x = train(chroma_server.url)
    session = chroma.QuerySession(embedding_set=SET, chroma_server_url=chroma_server.url)
    dup = session.log(input_uri="/dup", embedding=x[3])
    assert dup.not_useful and dup.nearest[0].input_uri == "/t/3"
    far = session.log(input_uri="/far", embedding=np.full(16, 7.0))
    assert far.training_recommended
    batch = session.log(input_uri=["/a", "/b"], embedding=x[:2], inferences=[{"label": "c0", "score": 0.51}, None])
    assert [r.input_uri for r in batch] == ["/a", "/b"]
    assert chroma.log(
        input_uri="/g", embedding=x[0], embedding_set=SET, training_mode=False, chroma_server_url=chroma_server.url
    ).not_useful
    # chroma.json's chroma_url switches everything with no other change to user code
    (tmp_path / "chroma.json").write_text(json.dumps({"chroma_url": chroma_server.url}))
    assert chroma.QuerySession(embedding_set=SET).log(input_uri="/c", embedding=x[5]).not_useful
    assert not (tmp_path / ".chroma").exists()  # nothing went to the embedded engine


def test_cli_against_the_service(chroma_server, tmp_path):
    x, _, _ = clusters(n_per=30, dim=8)
    s = chroma.TrainingSession(SET)
    s.bufferlocal(file=str(tmp_path / "b-$timestamp.jsonl.gz"))
    s.log(input_uri=[f"/{i}" for i in range(len(x))], embedding=x)
    (saved,) = s.save(upload=False)
    env_url = ["--chroma-url", chroma_server.url]

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "chroma", *args], capture_output=True, text=True, cwd=ROOT)

    out = cli("upload-training", str(saved.path), *env_url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["stored"] == 150
    assert json.loads(cli("upload-training", str(saved.path), *env_url).stdout)["stored"] == 0
    vec = base64.b64encode(x[2].astype("<f4").tobytes()).decode()
    answer = json.loads(cli("should-upload", f"-embedding_set={SET_ID}", vec, *env_url).stdout)
    assert answer["recommendation"] == "not_useful"
    sets = json.loads(cli("sets", "--json", *env_url).stdout)
    assert sets[0]["training"] == 150
    missing = cli("should-upload", "-embedding_set=" + "0" * 40, vec, *env_url)
    assert missing.returncode == 1 and "unknown embedding set" in missing.stderr


def test_tenants_are_isolated(keyed_server):
    url, alpha_keys, beta_key = keyed_server.url, keyed_server.alpha.keys, keyed_server.beta.key
    train(url, api_key=alpha_keys[0])
    beta = chroma.QuerySession(embedding_set=SET, chroma_server_url=url, api_key=beta_key)
    with pytest.raises(chroma.UnknownEmbeddingSetError):
        beta.log(input_uri="/q", embedding=np.ones(16))
    assert beta.transport.list_sets() == []
    assert beta.transport.get_set(SET_ID) is None
    # beta writing "the same" set writes its own set; alpha's is untouched
    train(url, api_key=beta_key, n_per=5)
    alpha = chroma.QuerySession(embedding_set=SET, chroma_server_url=url, api_key=alpha_keys[1])
    assert alpha.transport.get_set(SET_ID).training == 200
    assert beta.transport.get_set(SET_ID).training == 25


def test_wrong_missing_and_mismatched_keys(keyed_server):
    base = keyed_server.url + "/v1"
    assert requests.get(base + "/health", timeout=5).status_code == 200  # health needs no key
    missing = requests.get(base + "/sets", timeout=5)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    wrong = requests.get(base + "/sets", headers={"Authorization": "Bearer nope-nope-nope"}, timeout=5)
    assert wrong.status_code == 401 and "invalid API key" in wrong.json()["error"]["message"]
    beta_key, alpha = keyed_server.beta.key, keyed_server.alpha.application
    ok = requests.get(base + "/sets", headers={"X-Chroma-Api-Key": beta_key}, timeout=5)
    assert ok.status_code == 200
    claimed = requests.get(
        base + "/sets", headers={"X-Chroma-Api-Key": beta_key, "X-Chroma-Application-Id": alpha}, timeout=5
    )
    assert claimed.status_code == 403
    with pytest.raises(chroma.TransportError, match="invalid API key"):
        chroma.QuerySession(SET, chroma_server_url=keyed_server.url, api_key="wrong-key-123").transport.list_sets()
    log = keyed_server.log.read_text()
    assert keyed_server.alpha.key not in log and beta_key not in log and "nope-nope-nope" not in log


def _batch_bytes(tmp_path, n=10, dim=8, gz=False) -> bytes:
    x, _, _ = clusters(n_per=n, dim=dim, k=1)
    header = BatchHeader(new_batch_id(), EmbeddingSet.from_dict(SET), "training", dim, "t")
    records = Records(
        x, [f"{header.batch_id}:{i}" for i in range(n)], [f"/{i}" for i in range(n)], [None] * n, [None] * n, [0.0] * n
    )
    path = write_batch(tmp_path / f"{header.batch_id}.jsonl{'.gz' if gz else ''}", header, records)
    return path.read_bytes()


@pytest.fixture(scope="module")
def loopback_server(tmp_path_factory):
    """A server without keys (loopback clients only, one application) and a 1 MiB body limit.

    Its one application is shared: only test_upload_errors writes to it (and counts what it holds).
    """
    server = ChromaServer(tmp_path_factory.mktemp("loopback") / "data", extra=("--max-body-mb", "1"))
    try:
        yield server.start()
    finally:
        server.stop()


def test_upload_errors(loopback_server, tmp_path):
    server = loopback_server
    url = server.url + "/v1/batches"
    ndjson = {"Content-Type": "application/x-ndjson"}
    assert requests.post(url, data=_batch_bytes(tmp_path), headers=ndjson, timeout=10).json()["stored"] == 10
    wrong_type = requests.post(url, data=_batch_bytes(tmp_path), headers={"Content-Type": "text/plain"}, timeout=10)
    assert wrong_type.status_code == 415 and wrong_type.json()["error"]["code"] == "unsupported_media_type"
    big = _batch_bytes(tmp_path, n=1000, dim=384)
    assert len(big) > 1024 * 1024
    too_big = requests.post(url, data=big, headers=ndjson, timeout=30)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"
    chunked = requests.post(url, data=iter([big[:600_000], big[600_000:]]), headers=ndjson, timeout=30)
    assert chunked.status_code == 413  # no Content-Length: counted while streaming
    garbage = requests.post(url, data=b"not json at all\n", headers=ndjson, timeout=10)
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "batch_format"
    lines = _batch_bytes(tmp_path, n=5).splitlines(keepends=True)
    lines[2] = b"{oops\n"
    partial = requests.post(url, data=b"".join(lines), headers=ndjson, timeout=10).json()
    assert partial["stored"] == 4 and not partial["ok"] and partial["problems"][0].startswith("line 3:")
    gz = requests.post(
        url, data=_batch_bytes(tmp_path, gz=True), headers={**ndjson, "Content-Encoding": "gzip"}, timeout=10
    )
    assert gz.status_code == 200 and gz.json()["stored"] == 10
    gz_unlabelled = gzip.compress(_batch_bytes(tmp_path))
    assert requests.post(url, data=gz_unlabelled, headers=ndjson, timeout=10).json()["stored"] == 10
    sets = requests.get(server.url + "/v1/sets", timeout=5).json()["sets"]
    assert sets[0]["training"] == 10 + 4 + 10 + 10  # nothing from the rejected uploads


def test_query_errors(chroma_server):
    train(chroma_server.url)
    base = f"{chroma_server.url}/v1/sets/{SET_ID}/query"
    auth = chroma_server.headers
    too_many = requests.post(base, json={"embeddings": [[0.0] * 16] * 1025}, headers=auth, timeout=30)
    assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "too_many_embeddings"
    bad_b64 = requests.post(base, json={"embeddings": ["***"]}, headers=auth, timeout=5)
    assert bad_b64.status_code == 422 and bad_b64.json()["error"]["code"] == "invalid_embedding"
    dim = requests.post(base, json={"embeddings": [[1.0, 2.0]]}, headers=auth, timeout=5)
    assert dim.json()["error"]["code"] == "dimension_mismatch"
    with pytest.raises(chroma.InvalidEmbeddingError, match="dimension"):
        chroma.QuerySession(SET, chroma_server_url=chroma_server.url).log(input_uri="/a", embedding=[1.0, 2.0])
    malformed = requests.post(base, data=b"{", headers={**auth, "Content-Type": "application/json"}, timeout=5)
    assert malformed.status_code == 422 and malformed.json()["error"]["code"] == "invalid_request"
    assert requests.get(chroma_server.url + "/v1/nope", headers=auth, timeout=5).json()["error"]["code"] == "not_found"
    thresholds = requests.post(
        base, json={"embeddings": [[1.0] * 16], "thresholds": {"bogus": 1}}, headers=auth, timeout=5
    )
    assert thresholds.status_code == 422 and "unknown threshold" in thresholds.json()["error"]["message"]
    zero = requests.post(base, json={"embeddings": [[0.0] * 16]}, headers=auth, timeout=5)
    assert zero.status_code == 422 and "all zeros" in zero.json()["error"]["message"]


def test_request_objects_refuse_bad_fields_with_a_422_naming_them(chroma_server):
    train(chroma_server.url)
    auth = chroma_server.headers
    query = f"{chroma_server.url}/v1/sets/{SET_ID}/query"
    select = f"{chroma_server.url}/v1/sets/{SET_ID}/select"

    def post(url, body):
        if isinstance(body, bytes):
            return requests.post(url, data=body, headers={**auth, "Content-Type": "application/json"}, timeout=10)
        return requests.post(url, json=body, headers=auth, timeout=10)

    one = [[1.0] * 16]
    assert post(query, {"embeddings": one, "thresholds": {"neighbors": 10, "k": 12}}).status_code == 200
    for thresholds, field in [({"k": 2.5}, "thresholds.k"), ({"neighbors": -1}, "thresholds.neighbors")]:
        r = post(query, {"embeddings": one, "thresholds": thresholds})
        assert r.status_code == 422 and field in r.json()["error"]["message"], r.text
    nan = post(query, b'{"embeddings": [[1.0]], "thresholds": {"novelty": NaN}}')
    assert nan.status_code == 422 and "thresholds.novelty" in nan.json()["error"]["message"]
    # select: the request is checked before the engine is asked (the set has no production data: a 404 otherwise)
    assert post(select, {"n": 5}).json()["error"]["code"] == "no_production_data"
    for body, field in [
        ({"n": 0}, "n must"),
        ({"diversity": 2}, "diversity"),
        (b'{"since": NaN}', "since"),
        ({"typicality": -1}, "typicality"),
        ({"balance": 1.5}, "balance"),
    ]:
        r = post(select, body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text
        assert field in r.json()["error"]["message"], r.text


def _asgi_get(app, path: str, client: tuple[str, int]) -> tuple[int, dict]:
    """One GET through the ASGI app in-process, from a given client address (no traffic leaves the process)."""
    import asyncio

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"chroma")],
        "client": client,
        "server": ("127.0.0.1", 8000),
        "root_path": "",
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def test_non_loopback_clients_refused_without_keys(tmp_path):
    from chroma_core.server.app import create_app

    app = create_app(tmp_path)
    status, body = _asgi_get(app, "/v1/sets", ("10.1.2.3", 5000))
    assert status == 403 and "loopback" in body["error"]["message"]
    assert _asgi_get(app, "/v1/sets", ("127.0.0.1", 5000))[0] == 200
    assert _asgi_get(app, "/v1/sets", ("::1", 5000))[0] == 200


def test_start_message_says_loopback_only(loopback_server):
    assert "serving loopback clients only" in loopback_server.log.read_text()


def test_openapi_document(chroma_server):
    doc = requests.get(chroma_server.url + "/openapi.json", timeout=5).json()
    assert {"/v1/batches", "/v1/sets", "/v1/sets/{set_id}", "/v1/sets/{set_id}/query", "/v1/health"} <= set(
        doc["paths"]
    )


def test_sigterm_during_an_upload_stores_it_whole_or_not_at_all(tmp_path):
    import threading
    import time

    server = ChromaServer(tmp_path / "data").start()
    body = _batch_bytes(tmp_path, n=4000, dim=128)
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    halfway = threading.Event()

    def slow():
        for i, piece in enumerate(pieces):
            if i == len(pieces) // 2:
                halfway.set()
                time.sleep(0.5)  # SIGTERM lands here, mid-body
            yield piece

    outcome: dict = {}

    def send():
        try:
            r = requests.post(
                server.url + "/v1/batches", data=slow(), headers={"Content-Type": "application/x-ndjson"}, timeout=60
            )
            outcome["status"] = r.status_code
        except requests.RequestException as exc:
            outcome["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    assert halfway.wait(30)
    server.stop()  # SIGTERM: uvicorn stops accepting and lets in-flight requests finish
    sender.join()
    server.start()
    try:
        sets = requests.get(server.url + "/v1/sets", timeout=5).json()["sets"]
        stored = sets[0]["training"] if sets else 0
        assert stored in (0, 4000), stored
        if outcome.get("status") == 200:
            assert stored == 4000
    finally:
        server.stop()


def test_concurrent_uploads_to_one_set_lose_nothing(chroma_server):
    import threading

    from chroma_core.config import load_config
    from chroma_core.transport.http import HTTPTransport

    es = EmbeddingSet.from_dict(SET)
    errors = []

    def client(c: int) -> None:
        try:
            t = HTTPTransport(load_config(chroma_url=chroma_server.url, api_key=chroma_server.key, environ={}))
            rng = np.random.default_rng(c)
            for b in range(10):
                bid = f"c{c}-b{b}"
                header = BatchHeader(bid, es, "training", 16, "t")
                t.upload(
                    header,
                    Records(
                        rng.normal(size=(30, 16)).astype(np.float32),
                        [f"{bid}:{i}" for i in range(30)],
                        [f"/{bid}/{i}" for i in range(30)],
                        [None] * 30,
                        [None] * 30,
                        [0.0] * 30,
                    ),
                )
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    info = HTTPTransport(load_config(chroma_url=chroma_server.url, api_key=chroma_server.key, environ={})).get_set(
        es.id
    )
    assert info is not None and info.training == 6 * 10 * 30


def test_production_records_select_and_export_through_the_service(chroma_server, tmp_path):
    x = train(chroma_server.url)
    spread_out = 7.0 * np.random.default_rng(3).normal(size=(5, 16))
    far = np.concatenate([np.full((5, 16), 7.0), spread_out]).astype(np.float32)
    uris = [f"/far/{i}" for i in range(len(far))]
    with chroma.QuerySession(SET, chroma_server_url=chroma_server.url) as q:
        results = q.log(input_uri=["/dup", *uris], embedding=np.concatenate([x[3:4], far]))
    info = chroma.QuerySession(SET, chroma_server_url=chroma_server.url).transport.get_set(SET_ID)
    assert info.production == 11
    assert not (tmp_path / ".chroma").exists()  # stored by the service, not the embedded engine

    selection = chroma.select(SET, n=10, chroma_server_url=chroma_server.url)
    assert selection.considered == 11 and selection.recommended == 10
    # The five identical vectors are one pick; the other five differ enough to be picked too.
    assert len(selection.picks) == 6 and selection.near_duplicates_dropped == 4
    assert sum(int(u.split("/")[2]) < 5 for u in selection.input_uris) == 1
    # The weights travel: with typicality the dense spot (the five identical inputs) comes first.
    typical = chroma.select(SET, n=1, diversity=0.0, typicality=1.0, chroma_server_url=chroma_server.url)
    assert int(typical.input_uris[0].split("/")[2]) < 5
    plain = chroma.select(SET, n=1, diversity=0.0, typicality=0.0, chroma_server_url=chroma_server.url)
    assert int(plain.input_uris[0].split("/")[2]) >= 5  # without it, the highest priority: a spread-out one
    balanced = chroma.select(SET, n=3, balance=1.0, chroma_server_url=chroma_server.url)
    assert len(balanced.picks) == 3
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "chroma",
            "select",
            "--set",
            SET_ID,
            "-n",
            "10",
            "--uris",
            "--chroma-url",
            chroma_server.url,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == selection.input_uris

    report = chroma.export(SET, tmp_path / "set.jsonl", chroma_server_url=chroma_server.url)
    assert (report.training, report.production) == (len(x), 11)
    lines = [json.loads(li) for li in (tmp_path / "set.jsonl").read_text().splitlines()]
    prod = [r for r in lines[1:-1] if r["mode"] == "production"]
    assert [r["input_uri"] for r in prod] == ["/dup", *uris]
    assert [r["result"]["recommendation"] for r in prod] == [r.recommendation for r in results]

    with pytest.raises(chroma.NoProductionDataError, match="QuerySession"):
        chroma.select(SET, since=1e12, chroma_server_url=chroma_server.url)
    with pytest.raises(chroma.UnknownEmbeddingSetError):
        chroma.select("0" * 40, chroma_server_url=chroma_server.url)
    r = requests.get(
        f"{chroma_server.url}/v1/sets/{SET_ID}/records",
        params={"mode": "nope"},
        headers=chroma_server.headers,
        timeout=10,
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_conflicting_ids_reach_the_caller_of_upload_and_the_cli_exit_code(chroma_server, tmp_path):
    """A record id sent again with another vector is a conflict in the answer of ``upload()`` (the path
    ``save()`` takes, which combines the parts of a batch itself) and makes the CLI exit with its "partly done" code, not 0."""
    from chroma_core.cli.common import EXIT_PARTIAL
    from chroma_core.config import load_config
    from chroma_core.transport.http import HTTPTransport

    es = EmbeddingSet.from_dict({"model": "conflicts", "layer": "pool"})
    x, labels, _ = clusters(n_per=4, dim=8)
    records = Records(
        x,
        [f"id{i}" for i in range(len(x))],
        [f"/c/{i}" for i in range(len(x))],
        [None] * len(x),
        labels,
        [0.0] * len(x),
    )
    client = HTTPTransport(load_config(chroma_url=chroma_server.url, api_key=chroma_server.key, environ={}))
    assert client.upload(BatchHeader(new_batch_id(), es, "training", 8, "t"), records).stored == len(x)
    records.vectors[[1, 5]] += 0.5
    report = client.upload(BatchHeader(new_batch_id(), es, "training", 8, "t"), records)
    assert (report.stored, report.duplicates, report.conflicts) == (0, len(x) - 2, 2)
    assert report.conflicting_ids == ("id1", "id5") and not report.ok
    records.vectors[[1, 5]] += 0.5
    path = tmp_path / "again.jsonl"
    write_batch(path, BatchHeader(new_batch_id(), es, "training", 8, "t"), records)
    out = subprocess.run(
        [sys.executable, "-m", "chroma", "upload-training", "--chroma-url", chroma_server.url, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == EXIT_PARTIAL, out.stderr
    assert json.loads(out.stdout)["conflicting_ids"] == ["id1", "id5"]
