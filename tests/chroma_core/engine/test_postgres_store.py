"""What the PostgreSQL store does beyond the Store contract, on a real PostgreSQL 18 + pgvector server.

Store selection by URL, the errors a user meets (a wrong URL, a missing extension, the password never shown),
row-level security between applications, the index the planner really uses, concurrent writers of one batch, and
the schema's fitness for Citus, and that a query is one transaction.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import chroma
from chroma_core.config import load_config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine.postgres_schema import TABLES, index_name
from chroma_core.engine.stores import open_store
from chroma_core.errors import ConfigError, StorageError
from chroma_core.records import new_batch
from tests.conftest import SET, clusters

pytestmark = pytest.mark.slow
psycopg = pytest.importorskip("psycopg")

A = EmbeddingSet.from_dict({"model": "pg", "layer": "a"})


@pytest.fixture
def store_of(postgres_url, request):
    """Opens PostgresStores over the session's database, as tenants private to this test; closes them."""
    from chroma_core.engine.postgres_store import PostgresStore

    opened = []

    def open_(tenant: str = "t", **options):
        opened.append(PostgresStore(postgres_url, tenant=f"{request.node.name}/{tenant}", **options))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


def _batch(n=50, dim=8, seed=0, batch_id=None, mode="training"):
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return new_batch(A, mode, x, [f"/r/{seed}/{i}" for i in range(n)], batch_id=batch_id)


# ---- choosing the store ---------------------------------------------------------------------------------------------


def test_store_url_comes_from_chroma_json_and_the_environment_and_is_checked(tmp_path):
    url = "postgresql://me:hunter2@db.example:5432/chroma"
    (tmp_path / "chroma.json").write_text(f'{{"store_url": "{url}"}}')
    assert load_config(environ={}).store_url == url
    assert load_config(environ={"CHROMA_STORE_URL": "postgres://x@h/d"}).store_url == "postgres://x@h/d"
    assert "hunter2" not in repr(load_config(environ={}))
    with pytest.raises(ConfigError, match="not a PostgreSQL URL") as err:
        load_config(environ={"CHROMA_STORE_URL": "mysql://me:hunter2@h/d"})
    assert "hunter2" not in str(err.value)
    assert load_config(environ={}, chroma_json="{}").store_url is None  # no URL: SQLite as before


def test_no_url_is_sqlite_and_a_postgres_url_is_postgres(tmp_path, postgres_url):
    from chroma_core.engine.postgres_store import PostgresStore
    from chroma_core.engine.sqlite_store import SQLiteStore

    lite = open_store(tmp_path / "lite")
    pg = open_store(tmp_path / "unused", store_url=postgres_url, tenant="choose")
    try:
        assert isinstance(lite, SQLiteStore) and isinstance(pg, PostgresStore)
        assert "s3cret" not in repr(pg)
    finally:
        lite.close()
        pg.close()
    assert not (tmp_path / "unused").exists()


def test_unreachable_url_and_wrong_password_name_the_url_without_the_password(postgres):
    from chroma_core.engine.postgres_store import PostgresStore
    from tests.conftest import free_port

    unreachable = f"postgresql://chroma:Secret-XYZ@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(StorageError) as err:
        PostgresStore(unreachable)
    assert "Secret-XYZ" not in str(err.value) and "127.0.0.1" in str(err.value) and "chroma:***@" in str(err.value)
    wrong = postgres.url("postgres", password="Wrong-Pass-123")
    with pytest.raises(StorageError, match="password authentication failed") as err:
        PostgresStore(wrong)
    assert "Wrong-Pass-123" not in str(err.value)


def test_a_database_without_the_vector_extension_says_how_to_fix_it(postgres):
    from chroma_core.engine.postgres_store import PostgresStore

    url = postgres.new_database(vector=False)
    with pytest.raises(StorageError, match="CREATE EXTENSION vector") as err:
        PostgresStore(url)
    assert "s3cret" not in str(err.value)


def test_sessions_and_the_cli_use_the_database_of_store_url(postgres_url, tmp_path, monkeypatch):
    x, labels, _ = clusters(n_per=30, dim=16)
    monkeypatch.setenv("CHROMA_STORE_URL", postgres_url)
    monkeypatch.setenv("CHROMA_APPLICATION_ID", "embedded-notebook")
    with chroma.TrainingSession(embedding_set=SET) as s:
        s.log(input_uri=[f"/t/{i}" for i in range(len(x))], embedding=x, label=labels)
    result = chroma.QuerySession(embedding_set=SET).log(input_uri="/q", embedding=x[3])
    assert result.not_useful and result.nearest[0].input_uri == "/t/3"
    assert not (tmp_path / ".chroma" / "chroma.sqlite3").exists()  # nothing went to SQLite
    from chroma_core.cli import main

    assert main(["sets", "--json"]) == 0


# ---- isolation, indexing, concurrency --------------------------------------------------------------------------------


def test_row_level_security_hides_other_tenants_rows_even_from_a_query_without_a_tenant_filter(store_of, postgres_url):
    alpha, beta = store_of("alpha"), store_of("beta")
    header, records = _batch(n=5)
    alpha.put(header, [records], complete=lambda: True)
    assert beta.get_set(A.id) is None and beta.records(A.id, "training") == []
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SELECT set_config('chroma.tenant', %s, false)", (beta.tenant,))
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
        conn.execute("SELECT set_config('chroma.tenant', %s, false)", (alpha.tenant,))
        assert conn.execute("SELECT count(*) FROM chroma_records").fetchone()[0] == 5
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # nor may it write rows as another tenant
            conn.execute(
                "INSERT INTO chroma_state (tenant, set_id, key, value) VALUES (%s, 'x', 'k', '{}')", (beta.tenant,)
            )


def test_the_index_is_built_after_the_bulk_ingest_and_the_planner_uses_it(store_of, postgres_url):
    store = store_of(ann_threshold=500, halfvec=True)
    header, records = _batch(n=2000, dim=32)
    store.put(header, [records], complete=lambda: True)
    assert store.wait_for_index(A.id, 120)
    found = store.nearest(A.id, records.vectors[:5] / np.linalg.norm(records.vectors[:5], axis=1, keepdims=True), 10)
    assert found is not None and found.covered == 2000 and found.rows[:, 0].tolist() == [0, 1, 2, 3, 4]
    # Rows added later are not in the index (an ingest pays no HNSW insert): the caller searches them exactly.
    more_header, more = _batch(n=10, dim=32, seed=7, batch_id="more")
    store.put(more_header, [more], complete=lambda: True)
    after = store.nearest(A.id, more.vectors[:3] / np.linalg.norm(more.vectors[:3], axis=1, keepdims=True), 5)
    assert after.covered == 2000 and (after.rows < 2000).all()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SELECT set_config('chroma.tenant', %s, false)", (store.tenant,))
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT row FROM chroma_records WHERE set_id = %s AND tenant = %s AND mode = 'training' "
                "AND row < 2000 ORDER BY (embedding::halfvec(32)) <=> %s::vector::halfvec(32) LIMIT 10",
                (A.id, store.tenant, "[" + ",".join(["0.1"] * 32) + "]"),
            )
        )
    assert f"{index_name(store.tenant, A.id)}_2000" in plan, plan


def test_a_query_is_one_transaction_and_its_candidates_come_with_their_exact_vectors(store_of, monkeypatch):
    import dataclasses

    from chroma_core.engine.engine import Engine
    from chroma_core.types import QueryRequest

    store = store_of(ann_threshold=500, halfvec=True)
    header, records = _batch(n=2000, dim=32)
    store.put(header, [records], complete=lambda: True)
    assert store.wait_for_index(A.id, 120)
    queries = records.vectors[:4] / np.linalg.norm(records.vectors[:4], axis=1, keepdims=True)
    found = store.nearest(A.id, queries, 10)
    assert found is not None and found.vectors is not None and found.vectors.shape == (4, 10, 32)
    # The stored float32 vectors, not the index's halfvec ones: the re-rank's scores are exact.
    assert np.array_equal(found.vectors, records.vectors[found.rows])

    class RowsOnly:  # candidates without their vectors: the engine reads them apart, as it did before
        def __getattr__(self, name):
            return getattr(store, name)

        def nearest(self, set_id, q, k):
            return dataclasses.replace(store.nearest(set_id, q, k), vectors=None)

    engine, apart = Engine(store), Engine(RowsOnly())
    request = QueryRequest(A.id, records.vectors[10:13] + 0.01, ("/q/0", "/q/1", "/q/2"))
    engine.query(request)  # loads the set and calibrates
    expected = apart.query(request)
    tenants = []
    execute = psycopg.Connection.execute

    def counted(conn, query, *args, **kwargs):
        if "chroma.tenant" in str(query):  # each transaction names its tenant once
            tenants.append(query)
        return execute(conn, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counted)
    monkeypatch.setattr(store, "vectors_at", lambda *a: pytest.fail("a second read for the re-rank"))
    assert engine.query(request) == expected
    assert len(tenants) == 1  # the set's revision and the search share one transaction


def test_duplicates_is_one_transaction_and_finds_what_it_found_before(store_of, monkeypatch):
    from chroma_core.engine.engine import Engine
    from chroma_core.types import DuplicatesRequest, QueryRequest

    store = store_of()
    x = np.random.default_rng(4).normal(size=(300, 16)).astype(np.float32)
    x[150:160] = x[:10] + 1e-4  # near copies in training, and production inputs copying training ones
    store.put(*_as_batch(new_batch(A, "training", x, [f"/t/{i}" for i in range(300)])), complete=lambda: True)
    production = new_batch(A, "production", x[20:40] + 1e-4, [f"/p/{i}" for i in range(20)])
    store.put(*_as_batch(production), complete=lambda: True)
    store.delete_records(["/t/3", "/p/5"])  # and holes to read around

    class EachReadApart:  # every read in its own transaction, as duplicates ran before
        def __getattr__(self, name):
            return getattr(store, name)

    request = DuplicatesRequest(A.id, threshold=0.01)
    expected = Engine(EachReadApart()).duplicates(request)
    assert len(expected.groups) == 9 and len(expected.production) == 19
    tenants = []
    execute = psycopg.Connection.execute

    def counted(conn, query, *args, **kwargs):
        if "chroma.tenant" in str(query):
            tenants.append(query)
        return execute(conn, query, *args, **kwargs)

    engine = Engine(store)
    engine.query(QueryRequest(A.id, x[:1], ("/warm",)))  # loads the set and keeps its calibration
    monkeypatch.setattr(psycopg.Connection, "execute", counted)
    assert engine.duplicates(request) == expected
    assert len(tenants) == 1


def _as_batch(batch):
    header, records = batch
    return header, [records]


def test_two_writers_of_the_same_batches_at_once_store_them_once(store_of):
    first, second = store_of("same"), store_of("same")  # two replicas of one application
    batches = [_batch(n=200, seed=s, batch_id=f"b{s}") for s in range(6)]
    errors: list[BaseException] = []

    def send(store, order):
        try:
            for i in order:
                header, records = batches[i]
                store.put(header, [records], complete=lambda: True)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=send, args=(first, range(6))),
        threading.Thread(target=send, args=(second, reversed(range(6)))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    info = first.get_set(A.id)
    assert info.training == 1200
    stored = first.records(A.id, "training")
    assert [r.row for r in stored] == list(range(1200)) and len({r.id for r in stored}) == 1200


def test_the_calibration_is_kept_in_the_database_for_every_replica(postgres_url):
    from chroma_core.engine import Engine
    from chroma_core.engine.postgres_store import PostgresStore
    from chroma_core.types import QueryRequest

    x, labels, _ = clusters(n_per=40, dim=16)
    header, records = new_batch(A, "training", x, [f"/c/{i}" for i in range(len(x))], labels=labels)
    replicas = [Engine(PostgresStore(postgres_url, tenant="calibration")) for _ in range(2)]
    try:
        replicas[0].put(header, records)
        request = QueryRequest(A.id, x[:3] + 0.05, ("/q0", "/q1", "/q2"))
        one = replicas[0].query(request)
        kept = replicas[0].store.read_state(A.id, next(iter(_state_keys(postgres_url, "calibration"))))
        assert kept is not None and kept["n_training"] == len(x)
        assert replicas[1].query(request) == one
    finally:
        for engine in replicas:
            engine.close()


def _state_keys(url: str, tenant: str) -> list[str]:
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('chroma.tenant', %s, false)", (tenant,))
        return [r[0] for r in conn.execute("SELECT key FROM chroma_state WHERE key LIKE 'calibration/%'")]


# ---- laid out for Citus ---------------------------------------------------------------------------------------------


def test_the_schema_follows_the_citus_rules(store_of, postgres_url):
    store_of()  # the schema exists
    with psycopg.connect(postgres_url) as conn:
        keys = conn.execute(
            "SELECT c.relname, i.indexrelid::regclass::text, array_agg(a.attname::text) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
            "WHERE c.relname = ANY(%s) AND (i.indisunique OR i.indisprimary) GROUP BY 1, 2",
            (list(TABLES),),
        ).fetchall()
        columns = conn.execute(
            "SELECT table_name, array_agg(column_name::text) FROM information_schema.columns "
            "WHERE table_name = ANY(%s) GROUP BY 1",
            (list(TABLES),),
        ).fetchall()
        foreign = conn.execute(
            "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            (list(TABLES),),
        ).fetchall()
        rls = conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(%s)",
            (list(TABLES),),
        ).fetchall()
    assert {t for t, _, _ in keys} == set(TABLES)  # every table has a primary key
    for table, index, cols in keys:  # every primary and unique key includes the distribution column
        assert "set_id" in cols and "tenant" in cols, (table, index, cols)
    assert all({"tenant", "set_id"} <= set(cols) for _, cols in columns) and len(columns) == len(TABLES)
    assert foreign == []  # no foreign key at all, so none crosses sets
    assert sorted(rls) == sorted((t, True, True) for t in TABLES)
