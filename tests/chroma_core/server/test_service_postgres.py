"""The service over PostgreSQL: ``chroma serve --store-url`` on a real PostgreSQL 18 + pgvector server.

A representative part of ``test_service.py`` runs again here with the module's shared server keeping its data in a
database of its own (the tests are imported, and this module's ``shared_server`` is the one they get); then two
replicas over one database: the same batches uploaded through both at once are stored once, a replica killed
while a client uploads loses nothing and doubles nothing as the client moves to the other, and both give the same
answer to the same query.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from chroma_core.batch_format import write_batch
from chroma_core.config import load_config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.errors import TransportError
from chroma_core.records import BatchHeader, Records
from chroma_core.transport.http import HTTPTransport, RetryPolicy
from chroma_core.types import QueryRequest
from tests.chroma_core.server.test_service import (  # noqa: F401 - collected here, over PostgreSQL
    test_cli_against_the_service,
    test_concurrent_uploads_to_one_set_lose_nothing,
    test_production_records_select_and_export_through_the_service,
    test_query_errors,
    test_seed_examples_against_the_service,
    test_tenants_are_isolated,
    test_wrong_missing_and_mismatched_keys,
)
from tests.conftest import SET, ChromaServer, SharedServer, clusters

pytestmark = pytest.mark.slow
ES = EmbeddingSet.from_dict(SET)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory, postgres) -> Iterator[SharedServer]:
    """The module's keyed server, over a database of its own."""
    server = SharedServer(tmp_path_factory.mktemp("pg-server") / "data")
    server.extra = ("--store-url", postgres.new_database())
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def replicas(tmp_path, postgres) -> Iterator[tuple[ChromaServer, ChromaServer]]:
    """Two service replicas over one database, with one keys file, each with its own (unused) data folder."""
    url = postgres.new_database()
    keys = {"replica-key": "app-replicas"}
    pair = tuple(ChromaServer(tmp_path / f"replica-{i}", keys=keys, extra=("--store-url", url)) for i in range(2))
    try:
        for server in pair:
            server.start()
        yield pair  # type: ignore[misc]
    finally:
        for server in pair:
            server.stop()


def _client(server: ChromaServer, attempts: int = 3) -> HTTPTransport:
    config = load_config(chroma_url=server.url, api_key="replica-key", environ={})
    return HTTPTransport(config, retry=RetryPolicy(attempts=attempts, deadline=20.0))


def _batches(count: int, n: int = 50, dim: int = 16, seed: int = 0) -> list[tuple[BatchHeader, Records]]:
    x, labels, _ = clusters(n_per=count * n // 5, dim=dim, seed=seed)
    out = []
    for b in range(count):
        rows = slice(b * n, (b + 1) * n)
        ids = [f"b{seed}-{b}:{i}" for i in range(n)]
        records = Records(x[rows], ids, [f"/t/{seed}/{b}/{i}" for i in range(n)], [None] * n, labels[rows], [0.0] * n)
        out.append((BatchHeader(f"batch-{seed}-{b}", ES, "training", dim, "t"), records))
    return out


def test_two_replicas_store_the_same_batches_once_and_answer_alike(replicas):
    batches = _batches(12)
    errors: list[BaseException] = []

    def upload(server: ChromaServer, order: list[int]) -> None:
        try:
            client = _client(server)
            for i in order:
                client.upload(*batches[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=upload, args=(replicas[0], list(range(12)))),
        threading.Thread(target=upload, args=(replicas[1], list(reversed(range(12))))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    one, two = _client(replicas[0]), _client(replicas[1])
    assert one.get_set(ES.id).training == two.get_set(ES.id).training == 12 * 50
    header, records = one.records(ES.id, "training", 0, 10_000)
    assert len(set(records.ids)) == len(records) == 600
    queries = np.concatenate([b[1].vectors[:3] for b in batches[:4]]) + 0.01
    request = QueryRequest(ES.id, queries, tuple(f"/q/{i}" for i in range(len(queries))))
    assert one.query(request) == two.query(request)


def test_a_changed_record_sent_through_the_other_replica_is_a_conflict_in_the_answer(replicas, tmp_path):
    ((header, records),) = _batches(1, n=20, seed=3)
    path = tmp_path / "first.jsonl"
    write_batch(path, header, records)
    assert _client(replicas[0]).upload_file(path).stored == 20
    original = records.vectors[3].copy()
    records.vectors[[3, 7]] += 0.25  # the same ids, other vectors, in a batch of its own
    changed = tmp_path / "changed.jsonl"
    write_batch(changed, dataclasses.replace(header, batch_id="changed"), records)
    report = _client(replicas[1]).upload_file(changed)
    assert (report.read, report.stored, report.duplicates, report.conflicts) == (20, 0, 18, 2)
    assert report.conflicting_ids == (records.ids[3], records.ids[7]) and not report.ok
    kept = _client(replicas[0]).records(ES.id, "training", 3, 4)[1]
    np.testing.assert_array_equal(kept.vectors[0], original)  # the first record of the id stays


def test_a_replica_killed_mid_stream_loses_and_doubles_nothing(replicas):
    batches = _batches(20, seed=1)
    first, second = replicas
    client = _client(first, attempts=1)
    sent = 0
    for i, batch in enumerate(batches):
        if i == 8:
            first.kill()  # the load balancer's health check would now send the client elsewhere
        try:
            client.upload(*batch)
        except TransportError:
            client = _client(second)
            client.upload(*batch)  # the batch that failed, again: stored once whatever the first replica did
        sent += 1
    assert sent == 20
    info = _client(second).get_set(ES.id)
    assert info.training == 20 * 50
    first.start()  # the replica comes back and sees what the other stored
    assert _client(first).get_set(ES.id).training == 1000


def test_the_service_keeps_its_data_in_the_database_not_in_sqlite(chroma_server):
    import psycopg

    from tests.chroma_core.server.test_service import train

    train(chroma_server.url)
    url = chroma_server.server.extra[1]
    assert not (chroma_server.server.data / "applications").exists()
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('chroma.tenant', %s, false)", (chroma_server.application,))
        assert conn.execute("SELECT training FROM chroma_sets WHERE set_id = %s", (ES.id,)).fetchone() == (200,)


def test_the_database_restarting_under_load_is_a_503_with_retry_after_and_loses_nothing(replicas, postgres):
    import requests

    first = replicas[0]
    batches = _batches(4, seed=2)
    client = _client(first, attempts=30)
    client.upload(*batches[0])
    postgres.stop()
    try:
        r = requests.get(f"{first.url}/v1/sets", headers={"Authorization": "Bearer replica-key"}, timeout=30)
        assert r.status_code == 503 and r.headers["Retry-After"] == "2"
        assert r.json()["error"]["code"] == "store_unavailable" and "s3cret" not in r.text
        done: list[BaseException | None] = []

        def upload() -> None:
            try:
                for batch in batches[1:]:
                    client.upload(*batch)
                done.append(None)
            except BaseException as exc:
                done.append(exc)

        thread = threading.Thread(target=upload)
        thread.start()
        thread.join(3)
    finally:
        postgres.restart_start()
    thread.join(60)
    assert done == [None]
    assert _client(first).get_set(ES.id).training == 4 * 50


def test_an_exhausted_pool_is_a_503_after_the_bounded_wait_and_the_client_gets_through_once_freed(replicas, postgres):
    import psycopg
    import requests

    first = replicas[0]
    auth = {"Authorization": "Bearer replica-key"}
    batches = _batches(9, n=10, seed=4)
    _client(first).upload(*batches[0])
    url = first.extra[1]
    # Hold the set's row: each upload of it then keeps its pooled connection while it waits for the lock, and
    # eight of them hold the whole pool (8 connections).
    holder = psycopg.connect(url)
    holder.execute("SELECT set_config('chroma.tenant', 'app-replicas', true)")
    assert holder.execute("SELECT 1 FROM chroma_sets WHERE set_id = %s FOR UPDATE", (ES.id,)).fetchone() == (1,)
    uploads = [threading.Thread(target=_client(first, attempts=10).upload, args=batch) for batch in batches[1:]]
    retried: list[BaseException | None] = []

    def listing() -> None:
        try:
            assert ES.id in {s.id for s in _client(first, attempts=10).list_sets()}
            retried.append(None)
        except BaseException as exc:
            retried.append(exc)

    try:
        for t in uploads:
            t.start()
        time.sleep(1.0)  # the uploads are in and waiting on the lock
        started = time.monotonic()
        r = requests.get(f"{first.url}/v1/sets", headers=auth, timeout=30)
        waited = time.monotonic() - started
        assert r.status_code == 503 and r.headers["Retry-After"] == "2", r.text
        assert r.json()["error"]["code"] == "store_unavailable" and "pool" in r.json()["error"]["message"]
        assert 4.0 < waited < 15.0  # the pool's bounded wait (5 s), not forever
        client = threading.Thread(target=listing)
        client.start()  # a client retrying 503s, while the pool is still held
        time.sleep(1.0)
    finally:
        holder.rollback()  # the lock goes: the uploads finish and free the pool
        holder.close()
    client.join(60)
    for t in uploads:
        t.join(60)
    assert retried == [None]
    assert _client(first).get_set(ES.id).training == 9 * 10  # every upload stored once
