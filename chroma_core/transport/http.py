"""The HTTP transport: keep-alive connections (``http_conn.py``) or ``requests``, retries from tenacity's pieces, gzip.

Retried: connection errors, timeouts, and HTTP 429/502/503/504, with exponential backoff and jitter, honouring
``Retry-After``, for a bounded number of attempts within a total deadline. Every request this transport sends is
safe to repeat: uploads carry their batch id (the service stores a record once however often it arrives, and the
``Idempotency-Key`` header says so), queries and set lookups are read-only, set creation is keyed by content.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import json
import logging
import os
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
import tenacity

from chroma_core.batch_format import BatchReader, write_batch_to
from chroma_core.config import Config
from chroma_core.errors import TransportError, UnknownEmbeddingSetError
from chroma_core.json_text import loads
from chroma_core.logs import logger
from chroma_core.records import BatchHeader, Mode, Records
from chroma_core.secret import Secret
from chroma_core.server.wire import (
    APPLICATION_HEADER,
    BATCH_BINARY_TYPE,
    BATCH_CONTENT_TYPES,
    DELETE_PAGE,
    IDEMPOTENCY_HEADER,
    QUERY_CONTENT_TYPE,
    encode_batch,
    is_loopback,
)
from chroma_core.transport import http_query
from chroma_core.transport.base import Transport
from chroma_core.transport.http_conn import REDIRECTS, Connections
from chroma_core.transport.http_retry import RETRY_STATUSES, Retryable, RetryPolicy, retrying_for
from chroma_core.transport.http_retry import parse_retry_after as _parse_retry_after
from chroma_core.transport.http_wire import part_id, raise_for_status, service_base
from chroma_core.types import (
    DeleteReport,
    DuplicateReport,
    DuplicatesRequest,
    QueryRequest,
    QueryResult,
    Selection,
    SelectRequest,
    SetInfo,
    UploadReport,
)
from chroma_core.types.drift import ClusterReport, DriftReport, DriftRequest
from chroma_core.version import __version__

__all__ = ["HTTPTransport", "RetryPolicy", "raise_for_status", "service_base"]

_ADVICE = (
    "In serving code that must never fail, use @recommend (chroma_integrations.serving): it never raises and keeps "
    "what it cannot send; a QuerySession's deadline= sets how long it tries."
)


def _password(url: str | None) -> str | None:
    return None if not url else urlsplit(url).password


_GZIP_QUERY_ABOVE = 16 * 1024
#: Records go up in bodies of about this size, each a batch of its own whose id follows from the batch's id and its
#: place (so sending it again stores nothing twice): a 100k x 384 upload is never one 200 MB body in memory.
UPLOAD_PART_BYTES = 8 * 1024 * 1024


def _read_environment_once(session: requests.Session, base: str) -> None:
    """Take the environment's proxy and CA-bundle settings for ``base`` now, not on every request.

    With ``trust_env`` on, requests walks ``os.environ`` twice per request to find them (a third of a small
    query's client CPU, measured). The transport only ever talks to ``base``, so the answer never changes.
    ``NO_PROXY`` is honoured as requests honours it, for this host. ``~/.netrc`` is no longer read: it would have
    replaced the API key's ``Authorization`` header with basic auth anyway.
    """
    settings = session.merge_environment_settings(base, {}, None, None, None)
    session.trust_env = False
    session.proxies = dict(settings["proxies"])
    session.verify = settings["verify"]
    session.cert = settings["cert"]


#: The request arguments that the keep-alive path takes (a body factory's stream, for one, goes through requests).
_PLAIN_ARGUMENTS = frozenset({"data", "headers", "params"})


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


class HTTPTransport(Transport):
    """Reaches the Chroma service at ``config.chroma_url``.

    >>> t = HTTPTransport(load_config(chroma_url="http://127.0.0.1:8000"))  # doctest: +SKIP
    """

    def __init__(
        self,
        config: Config,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        if not config.chroma_url:
            raise TransportError("HTTPTransport needs chroma_url.")
        self.base = service_base(config.chroma_url)
        self.policy = retry or RetryPolicy()
        host = urlsplit(self.base).hostname
        self.compress = self.policy.compress if self.policy.compress is not None else not is_loopback(host)
        self._sleep = sleep
        #: The keep-alive http.client path (http_conn.py), on a session of our own only: a session passed in may
        #: carry adapters, auth or hooks that only requests would honour.
        self._connections: Connections | None = None
        if session is None:
            session = requests.Session()
            _read_environment_once(session, self.base)
            self._connections = Connections(self.base, session)
        self.session = session
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = f"chroma-python/{__version__}"
        if config.api_key:
            self.session.headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        if config.application_id:
            self.session.headers[APPLICATION_HEADER] = config.application_id
        if config.http_proxy:
            self.session.proxies = {"http": config.http_proxy, "https": config.http_proxy}
        # What must never appear in an error message: requests' own errors quote the proxy URL and its password.
        self._secrets = [s for s in (_password(config.http_proxy), config.api_key) if s]
        self._warned_retry = False
        #: Queries go as raw float32 until the service says it takes only JSON (an older service).
        self._binary_queries = True
        #: Batches go in the binary form until the service answers 415 (an older service); then as JSONL.
        self._binary_uploads = True

    def __repr__(self) -> str:
        return f"<HTTPTransport {self.base}>"  # never the headers: they hold the key

    def close(self) -> None:
        self.session.close()
        if self._connections is not None:
            self._connections.close()

    @contextlib.contextmanager
    def _map_errors(self, what: str, tries: list[int]) -> Iterator[None]:
        """The one place where requests' and tenacity's errors become ours."""
        try:
            yield
        except Retryable as exc:
            raise TransportError(
                f"{what}: the Chroma service at {self.base} was still answering HTTP {exc.response.status_code} "
                f"after {self._tries(tries)}; nothing was lost on this side, try again later."
            ) from exc
        except requests.Timeout as exc:
            raise TransportError(
                f"{what}: the Chroma service at {self.base} did not answer in time ({self._tries(tries)}). {_ADVICE}"
            ) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise TransportError(
                f"{what}: cannot reach the Chroma service at {self.base} ({self._tries(tries)}): {type(exc).__name__}. "
                f"Check chroma_url and that the service is running. {_ADVICE}"
            ) from exc
        except requests.RequestException as exc:
            raise TransportError(f"{what}: the request failed: {self._scrub(str(exc))}") from exc

    def _tries(self, tries: list[int]) -> str:
        return f"{tries[0]} attempt{'s' * (tries[0] != 1)} within the {self.policy.deadline:g} s deadline"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            value = secret.get_secret_value() if isinstance(secret, Secret) else secret
            text = text.replace(value, "***")
        return text

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = f"HTTP {exc.response.status_code}" if isinstance(exc, Retryable) else type(exc).__name__
        # Once per outage at WARNING (the next success re-arms it); every further retry at DEBUG.
        level = logging.DEBUG if self._warned_retry else logging.WARNING
        self._warned_retry = True
        logger.log(
            level,
            "the service at %s did not answer (%s); retrying for up to %g s",
            self.base,
            reason,
            self.policy.deadline,
        )

    def _request(self, method: str, path: str, what: str, *, check: bool = True, **kwargs: Any) -> requests.Response:
        body = kwargs.pop("body_factory", None)
        policy = self.policy
        started = time.monotonic()
        tries = [0]  # attempts of this call, for its error message

        def attempt() -> requests.Response:
            tries[0] += 1
            if body is not None:
                kwargs["data"] = body()  # a fresh stream for every attempt
            # No attempt may outlast the call's deadline: each one's timeouts shrink to what is left of it.
            left = max(0.05, policy.deadline - (time.monotonic() - started))
            timeout = (min(policy.connect_timeout, left), min(policy.read_timeout, left))
            response = self._send(method, path, timeout, kwargs)
            if response.status_code in RETRY_STATUSES:
                raise Retryable(response, _parse_retry_after(response.headers.get("Retry-After")))
            self._warned_retry = False
            return response

        retrying = retrying_for(policy, self._sleep, self._before_retry)
        with self._map_errors(what, tries):
            response = retrying(attempt)
        if check:
            raise_for_status(response)
        return response

    def _send(self, method: str, path: str, timeout: tuple[float, float], kwargs: dict[str, Any]) -> requests.Response:
        """One attempt: on this thread's keep-alive connection where nothing of requests' machinery is needed (a
        bytes body, no proxy, no redirect to follow), else through the requests session."""
        connections = self._connections
        if (
            connections is not None
            and kwargs.keys() <= _PLAIN_ARGUMENTS
            and isinstance(kwargs.get("data", b""), bytes)
            and not any(self.session.proxies.values())
        ):
            response = connections.request(method, path, timeout=timeout, **kwargs)
            if response.status_code not in REDIRECTS:
                return response
        return self.session.request(method, self.base + path, timeout=timeout, **kwargs)

    def _json(self, method: str, path: str, what: str, payload: Any = None) -> Any:
        kwargs: dict[str, Any] = {}
        if payload is not None:
            data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            headers = {"Content-Type": "application/json"}
            if self.compress and len(data) > _GZIP_QUERY_ABOVE:
                data = gzip.compress(data, compresslevel=1)
                headers["Content-Encoding"] = "gzip"
            kwargs = {"data": data, "headers": headers}
        return self._request(method, path, what, **kwargs).json()

    # ---- Transport ----------------------------------------------------------------------------------------------

    def upload(self, header: BatchHeader, records: Records) -> UploadReport:
        binary = self._binary_uploads
        # A JSONL line holds its embedding in base64 (4/3 of its bytes); the binary form, the raw bytes. Both carry
        # the uri, id and JSON fields.
        row_bytes = header.dimension * 4 if binary else header.dimension * 4 * 4 // 3
        per_part = max(1, UPLOAD_PART_BYTES // (row_bytes + 256))
        parts = max(1, -(-len(records) // per_part))
        reports = []
        for part in range(parts):
            start = part * per_part
            rows = records if parts == 1 else records.subset(range(start, min(start + per_part, len(records))))
            part_header = dataclasses.replace(header, batch_id=part_id(header.batch_id, part, parts))
            what = f"uploading batch {header.batch_id}" + (f" (part {part + 1} of {parts})" if parts > 1 else "")
            if binary:
                report = self._upload_binary(part_header, rows, what)
                if report is None:
                    # A 415 comes on the first part; were it later, records are stored once by id anyway.
                    return self.upload(header, records)
                reports.append(report)
                continue
            buffer = io.BytesIO()
            write_batch_to(buffer, part_header, rows, compress=self.compress)
            reports.append(self._upload(part_header.batch_id, _constant(buffer.getvalue()), what, self.compress))
        return UploadReport.combined(header.batch_id, header.set_id, header.mode, reports)

    def _upload_binary(self, header: BatchHeader, records: Records, what: str) -> UploadReport | None:
        """Send one part in the binary form; None when the service takes only JSONL (then it gets JSONL from now)."""
        payload = encode_batch(header, records)
        headers = {"Content-Type": BATCH_BINARY_TYPE, IDEMPOTENCY_HEADER: header.batch_id}
        if self.compress:
            payload = gzip.compress(payload, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        response = self._request("POST", "/batches", what, check=False, data=payload, headers=headers)
        if response.status_code == 415:
            logger.info("the service at %s takes no binary batches; sending it JSONL", self.base)
            self._binary_uploads = False
            return None
        raise_for_status(response)
        return UploadReport.from_dict(response.json())

    def upload_file(self, path: str | os.PathLike[str]) -> UploadReport:
        with BatchReader(path) as reader:  # fail fast, locally, on a file with no usable header
            batch_id = reader.header.batch_id

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                first = f.read(2)
                f.seek(0)
                if first == b"\x1f\x8b" or not self.compress:
                    yield from iter(lambda: f.read(1 << 20), b"")
                    return
                gz = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: a gzip header, as Content-Encoding says
                for block in iter(lambda: f.read(1 << 20), b""):
                    yield gz.compress(block)
                yield gz.flush()

        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        return self._upload(batch_id, chunks, f"uploading {os.fspath(path)}", gzipped or self.compress)

    def _upload(self, batch_id: str, body: Callable[[], Any], what: str, gzipped: bool) -> UploadReport:
        headers = {"Content-Type": BATCH_CONTENT_TYPES[0], IDEMPOTENCY_HEADER: batch_id}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return UploadReport.from_dict(
            self._request("POST", "/batches", what, headers=headers, body_factory=body).json()
        )

    def query(self, request: QueryRequest) -> list[QueryResult]:
        results: list[QueryResult] = []
        path = f"/sets/{request.set_id}/query"
        form = "binary" if self._binary_queries else "json"
        for rows in http_query.pages(request, form):
            if form == "binary":
                headers = {"Content-Type": QUERY_CONTENT_TYPE}
                body = http_query.binary_body(request, rows)
                response = self._request("POST", path, "querying", check=False, data=body, headers=headers)
                if not http_query.binary_refused(response):
                    raise_for_status(response)
                    results.extend(QueryResult.from_dict(r) for r in loads(response.content)["results"])
                    continue
                logger.info("the service at %s takes no binary queries; sending it JSON", self.base)
                self._binary_queries = False
                # The pages of the JSON form are smaller: what is left of this request goes the JSON way.
                rest = QueryRequest(
                    request.set_id,
                    request.vectors[rows.start :],
                    request.input_uris[rows.start :],
                    None if request.inferences is None else request.inferences[rows.start :],
                    request.thresholds,
                )
                return results + self.query(rest)
            data = self._json("POST", path, "querying", http_query.json_body(request, rows))
            results.extend(QueryResult.from_dict(r) for r in data["results"])
        return results

    def select(self, request: SelectRequest) -> Selection:
        path = f"/sets/{request.set_id}/select"
        return Selection.from_dict(self._json("POST", path, "selecting inputs to label", request.to_wire()))

    def duplicates(self, request: DuplicatesRequest) -> DuplicateReport:
        path = f"/sets/{request.set_id}/duplicates"
        return DuplicateReport.from_dict(self._json("POST", path, "looking for near duplicates", request.to_wire()))

    def drift(self, request: DriftRequest) -> DriftReport:
        path = f"/sets/{request.set_id}/drift"
        return DriftReport.from_dict(self._json("POST", path, "computing drift", request.to_wire()))

    def clusters(self, set_id: str, k: int = 20, since: float | None = None) -> ClusterReport:
        payload = {"k": k, "since": since}
        return ClusterReport.from_dict(self._json("POST", f"/sets/{set_id}/clusters", "clustering a set", payload))

    def records(self, set_id: str, mode: Mode, start: int = 0, limit: int = 8192) -> tuple[BatchHeader, Records]:
        response = self._request(
            "GET",
            f"/sets/{set_id}/records",
            f"reading {mode} records",
            params={"mode": mode, "start": start, "limit": limit},
        )
        with BatchReader(io.BytesIO(response.content), name=f"the service's {mode} records") as reader:
            records = reader.read_all()
            if reader.problems:
                raise TransportError(
                    f"the service sent a damaged page of {mode} records ({reader.problems[0]}); try again."
                )
            return reader.header, records

    def delete_set(self, set_id: str) -> bool:
        return bool(self._json("DELETE", f"/sets/{set_id}", "deleting a set")["deleted"])

    def delete_records(self, input_uris: Sequence[str], set_id: str | None = None) -> DeleteReport:
        uris = list(input_uris)
        totals = [0, 0]
        sets: set[str] = set()
        # In pages, so that erasing many inputs never makes one oversized request.
        for start in range(0, max(len(uris), 1), DELETE_PAGE):
            payload: dict[str, Any] = {"input_uris": uris[start : start + DELETE_PAGE]}
            if set_id is not None:
                payload["set_id"] = set_id
            report = DeleteReport.from_dict(self._json("POST", "/records/delete", "deleting records", payload))
            totals[0] += report.training
            totals[1] += report.production
            sets.update(report.sets)
        return DeleteReport(totals[0], totals[1], tuple(sorted(sets)))

    def get_set(self, set_id: str) -> SetInfo | None:
        try:
            return SetInfo.from_dict(self._json("GET", f"/sets/{set_id}", "looking up a set"))
        except UnknownEmbeddingSetError:
            return None

    def list_sets(self) -> list[SetInfo]:
        return [SetInfo.from_dict(s) for s in self._json("GET", "/sets", "listing sets")["sets"]]

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/health", "checking health")
        return result
