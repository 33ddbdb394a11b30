"""The PostgreSQL store's schema: tables, row-level security, and the per-set HNSW index.

Laid out for Citus (see ``docs/scale-out.md``): every table carries the application (``tenant``) and the set id,
every primary and unique key includes ``set_id`` (the distribution column), and no foreign key crosses sets (there
is none at all: a set's rows are removed by the store, in one transaction). Row-level security keeps one
application from another's rows even when a query forgets its ``WHERE tenant = ...``: each transaction sets
``chroma.tenant`` and the policies compare every row with it (``FORCE`` so that the tables' owner is held too; a
superuser still bypasses RLS, so the service should connect as an ordinary role).

Training and production vectors live in one pgvector column without a fixed dimension; a set's HNSW index is a
*partial expression* index over its own training rows, ``(embedding::vector(D)) WHERE tenant = .. AND set_id = ..
AND mode = 'training'``, built once the set is large enough (after its bulk ingest, never row by row into an
empty index) and kept current by PostgreSQL as rows are added.
"""

from __future__ import annotations

import hashlib

from chroma_core.engine.answers import ANSWER_COLUMNS

__all__ = ["DDL", "TABLES", "VERSION", "index_name", "vector_cast"]

#: 2: ``chroma_sets.training_holes`` / ``production_holes`` (see :mod:`~chroma_core.engine.postgres_holes`).
VERSION = 2

#: Every table of the schema; each one has ``tenant`` and ``set_id`` columns.
TABLES = ("chroma_sets", "chroma_batches", "chroma_state", "chroma_records")

_ANSWER_TYPES = ("smallint", "smallint", "bigint", *["double precision"] * 8, "text")
_ANSWERS = ",\n    ".join(f"{c} {t}" for c, t in zip(ANSWER_COLUMNS, _ANSWER_TYPES, strict=True))

_TABLES = f"""
CREATE TABLE IF NOT EXISTS chroma_sets (
    tenant text NOT NULL, set_id text NOT NULL, key_json text NOT NULL, dimension integer NOT NULL,
    created_at double precision NOT NULL, training bigint NOT NULL DEFAULT 0, production bigint NOT NULL DEFAULT 0,
    revision bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (set_id, tenant)
);
ALTER TABLE chroma_sets ADD COLUMN IF NOT EXISTS training_holes bigint[] NOT NULL DEFAULT '{{}}';
ALTER TABLE chroma_sets ADD COLUMN IF NOT EXISTS production_holes bigint[] NOT NULL DEFAULT '{{}}';
CREATE TABLE IF NOT EXISTS chroma_batches (
    tenant text NOT NULL, set_id text NOT NULL, batch_id text NOT NULL, mode text NOT NULL,
    complete boolean NOT NULL, stored bigint NOT NULL, updated_at double precision NOT NULL,
    PRIMARY KEY (set_id, tenant, batch_id)
);
CREATE TABLE IF NOT EXISTS chroma_state (
    tenant text NOT NULL, set_id text NOT NULL, key text NOT NULL, value text NOT NULL,
    PRIMARY KEY (set_id, tenant, key)
);
CREATE TABLE IF NOT EXISTS chroma_records (
    tenant text NOT NULL, set_id text NOT NULL, mode text NOT NULL, id text NOT NULL, row bigint NOT NULL,
    batch_id text NOT NULL, input_uri text NOT NULL, inferences text, label text, time double precision NOT NULL,
    preview text, embedding vector NOT NULL,
    {_ANSWERS},
    PRIMARY KEY (set_id, tenant, mode, id),
    CONSTRAINT chroma_records_row UNIQUE (set_id, tenant, mode, row)
);
CREATE INDEX IF NOT EXISTS chroma_records_time ON chroma_records (set_id, tenant, time) WHERE mode = 'production';
CREATE INDEX IF NOT EXISTS chroma_records_uri ON chroma_records (set_id, tenant, input_uri);
CREATE TABLE IF NOT EXISTS chroma_schema (version integer NOT NULL);
"""

_POLICY = """
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS chroma_tenant ON {table};
CREATE POLICY chroma_tenant ON {table}
    USING (tenant = current_setting('chroma.tenant', true))
    WITH CHECK (tenant = current_setting('chroma.tenant', true));
"""

#: The statements that create the schema (idempotent; run under an advisory lock by the first store to open).
DDL: tuple[str, ...] = tuple(
    s.strip() for s in (_TABLES + "".join(_POLICY.format(table=t) for t in TABLES)).split(";") if s.strip()
)


def index_name(tenant: str, set_id: str) -> str:
    """The name of a set's HNSW index (a digest: identifiers are at most 63 bytes, tenants are free text)."""
    return "chroma_hnsw_" + hashlib.sha256(f"{tenant}\0{set_id}".encode()).hexdigest()[:32]


def vector_cast(dimension: int, halfvec: bool) -> tuple[str, str]:
    """The expression the index is built on and its operator class (``halfvec`` halves the index's memory)."""
    kind = "halfvec" if halfvec else "vector"
    return f"(embedding::{kind}({int(dimension)}))", f"{kind}_cosine_ops"
