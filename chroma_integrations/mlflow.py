"""``autolog()``: embedding sets attached to MLflow runs as artifacts, in the style of MLflow's autologging.

While a run is active, every batch a ``TrainingSession`` saves (``ChromaPipeline`` included) and the embeddings a
``QuerySession`` asks about are attached to it: batch files in the batch format (gzip) under ``chroma/<set_id>/``,
one ``log_artifact`` per batch (nothing already attached is uploaded again), a ``manifest.json`` per set listing
the files, their counts and the set's dict, run tags (``chroma.embedding_set_id``, ``chroma.embedding_set_ids``
and ``chroma.set.<key>`` for each key of the set), and, for queries, the metrics ``chroma.queries``,
``chroma.training_recommended_rate`` and ``chroma.not_useful_rate``. A ``chroma.drift`` report becomes one metric
step per window (``chroma.drift.<set>.ood_share``, ``.drifted``, ...; :mod:`chroma_integrations.mlflow_drift`).

Attaching happens on a background thread, against the run that was active when the data was logged, so a slow or
dead tracking server never blocks or fails the training loop. When a run ends, what is still pending gets up to
``attach_timeout`` seconds; what could not be attached then stays in a local folder named in a warning.

>>> import chroma_integrations.mlflow as chroma_mlflow                       # doctest: +SKIP
>>> chroma_mlflow.autolog()                                                   # doctest: +SKIP
>>> with mlflow.start_run(): ...; session.save()                              # doctest: +SKIP
>>> chroma_mlflow.load_embeddings(run_id)                                     # doctest: +SKIP
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chroma_core import hooks
from chroma_core.batch_format import read_batch, write_batch
from chroma_core.delivery import Handler, Tally, Worker
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.guard import capture_internal_exceptions
from chroma_core.logs import logger
from chroma_core.records import BatchHeader, Records, new_batch
from chroma_core.types import QueryResult
from chroma_integrations.mlflow_drift import window_metrics

try:
    import mlflow
    import mlflow.tracking.fluent as _fluent
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
except ImportError as exc:  # pragma: no cover - the [mlflow] extra installs it
    raise ImportError("chroma_integrations.mlflow needs mlflow: pip install 'chroma-ml[mlflow]'") from exc

__all__ = ["RunEmbeddings", "autolog", "load_embeddings"]

_NAME = "mlflow"
_lock = threading.Lock()
_state: dict[str, Any] = {"attacher": None, "original_end_run": None}


@dataclasses.dataclass
class RunEmbeddings:
    """One embedding set read back from a run: its dict, all vectors (in file order) and their records."""

    set_id: str
    embedding_set: dict[str, Any]
    vectors: np.ndarray
    records: list[dict[str, Any]]
    files: list[str]


@dataclasses.dataclass
class _Job:
    run_id: str
    tracking_uri: str
    kind: str  # "batch" | "metrics"
    set_id: str = ""
    embedding_set: dict[str, Any] = dataclasses.field(default_factory=dict)
    path: Path | None = None
    count: int = 0
    mode: str = "training"
    batch_id: str = ""
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    step: int = 0
    timestamp_ms: int | None = None  # None: now


class _Attacher(Handler[_Job]):
    """Receives session events (a ``chroma_core.hooks`` listener) and attaches them to runs in the background.

    The background part is a :class:`chroma_core.delivery.Worker` whose handler is this object (``process``).
    """

    def __init__(
        self, *, only_set: str | None, silent: bool, exclusive: bool, attach_timeout: float, query_batch_size: int
    ) -> None:
        self.only_set = only_set
        self.silent = silent
        self.exclusive = exclusive
        self.attach_timeout = attach_timeout
        self.query_batch_size = query_batch_size
        self.staging = Path(tempfile.mkdtemp(prefix="chroma-mlflow-"))
        self._failed: dict[str, list[_Job]] = collections.defaultdict(list)
        self._manifests: dict[tuple[str, str], dict[str, Any]] = {}
        self._tagged: dict[str, list[str]] = collections.defaultdict(list)
        self._queries: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self._production: dict[tuple[str, str], list[tuple[EmbeddingSet, np.ndarray, str, Any]]] = (
            collections.defaultdict(list)
        )
        self._lock = threading.Lock()
        # Jobs are small (a file name, a few metrics); the bound only keeps a dead tracking server from growing
        # memory without end. A dropped job's batch stays in the staging folder, which the warning names.
        self._worker: Worker[_Job] = Worker(
            self, name="chroma-mlflow", tally=Tally("MLflow attachments", str(self.staging)), queue_size=100_000
        )

    # ---- events (the caller's thread: cheap, never raising) ----------------------------------------------------

    def _run_id(self) -> tuple[str, str] | None:
        run = mlflow.active_run()
        if run is None:
            return None
        if self.exclusive and "mlflow.autologging" not in run.data.tags:
            return None  # exclusive: never log into runs the user created
        return run.info.run_id, mlflow.get_tracking_uri()

    def _warn(self, message: str, *args: Any) -> None:
        if not self.silent:
            logger.warning(message, *args)

    def batch_saved(self, header: BatchHeader, records: Records) -> None:
        with capture_internal_exceptions("attaching a batch to the MLflow run"):
            run = self._run_id()
            if run is None or (self.only_set and header.set_id != self.only_set):
                return
            self._stage(run, header, records)

    def queried(
        self, es: EmbeddingSet, vectors: Any, uris: Sequence[str], infs: Sequence[Any], results: Sequence[QueryResult]
    ) -> None:
        with capture_internal_exceptions("attaching queries to the MLflow run"):
            run = self._run_id()
            if run is None or (self.only_set and es.id != self.only_set):
                return
            run_id = run[0]
            with self._lock:
                counts = self._queries[run_id]
                counts["queries"] += len(results)
                counts["training_recommended"] += sum(r.training_recommended for r in results)
                counts["not_useful"] += sum(r.not_useful for r in results)
                buf = self._production[(run_id, es.id)]
                buf.extend((es, np.asarray(v, np.float32), u, i) for v, u, i in zip(vectors, uris, infs, strict=True))
                full = len(buf) >= self.query_batch_size
            if full:
                self._flush_production(run, es.id)
            self._enqueue(_Job(run_id, run[1], "metrics", metrics=self._metrics(run_id), step=int(counts["queries"])))

    def drift_reported(self, report: Any) -> None:
        with capture_internal_exceptions("logging drift to the MLflow run"):
            run = self._run_id()
            if run is None or (self.only_set and report.set_id != self.only_set):
                return
            for step, when, metrics in window_metrics(report):
                self._enqueue(_Job(run[0], run[1], "metrics", metrics=metrics, step=step, timestamp_ms=when))

    # ---- staging -------------------------------------------------------------------------------------------------

    def _metrics(self, run_id: str) -> dict[str, float]:
        with self._lock:
            c = self._queries[run_id]
            n = max(1, c["queries"])
            return {
                "chroma.queries": float(c["queries"]),
                "chroma.training_recommended_rate": c["training_recommended"] / n,
                "chroma.not_useful_rate": c["not_useful"] / n,
            }

    def _flush_production(self, run: tuple[str, str], set_id: str) -> None:
        with self._lock:
            items = self._production.pop((run[0], set_id), [])
        if not items:
            return
        es = items[0][0]
        dim = len(items[0][1])
        items = [it for it in items if len(it[1]) == dim]
        header, records = new_batch(
            es,
            "production",
            np.stack([it[1] for it in items]),
            [it[2] for it in items],
            inferences=[it[3] for it in items],
        )
        self._stage(run, header, records)

    def _stage(self, run: tuple[str, str], header: BatchHeader, records: Records) -> None:
        path = self.staging / run[0] / header.set_id / f"{header.mode}-{header.batch_id}.jsonl.gz"
        write_batch(path, header, records)
        self._enqueue(
            _Job(
                run[0],
                run[1],
                "batch",
                header.set_id,
                dict(header.embedding_set.key),
                path,
                len(records),
                header.mode,
                header.batch_id,
            )
        )

    def _enqueue(self, job: _Job) -> None:
        self._worker.submit(job)

    # ---- the background thread -----------------------------------------------------------------------------------

    def process(self, items: list[_Job]) -> None:
        for job in items:
            try:
                self._attach(job)
            except Exception as exc:  # the tracking server is down or slow: kept, and retried when the run ends
                with self._lock:
                    self._failed[job.run_id].append(job)
                self._warn(
                    "could not attach to MLflow run %s yet (%s); will retry when the run ends",
                    job.run_id,
                    type(exc).__name__,
                )

    def _attach(self, job: _Job) -> None:
        client = MlflowClient(tracking_uri=job.tracking_uri)
        if job.kind == "metrics":
            when = job.timestamp_ms if job.timestamp_ms is not None else int(time.time() * 1000)
            client.log_batch(job.run_id, metrics=[Metric(k, v, when, job.step) for k, v in job.metrics.items()])
            return
        assert job.path is not None
        artifact_dir = f"chroma/{job.set_id}"
        client.log_artifact(job.run_id, str(job.path), artifact_dir)
        key = (job.run_id, job.set_id)
        with self._lock:
            manifest = self._manifests.setdefault(
                key,
                {"set_id": job.set_id, "embedding_set": job.embedding_set, "files": [], "training": 0, "production": 0},
            )
            if all(f["name"] != job.path.name for f in manifest["files"]):
                manifest["files"].append(
                    {"name": job.path.name, "batch_id": job.batch_id, "mode": job.mode, "count": job.count}
                )
                manifest[job.mode] += job.count
            text = json.dumps(manifest, indent=2, sort_keys=True)
            new_set = job.set_id not in self._tagged[job.run_id]
            if new_set:
                self._tagged[job.run_id].append(job.set_id)
            ids = ",".join(self._tagged[job.run_id])
        manifest_dir = self.staging / job.run_id / job.set_id / "manifest"
        manifest_dir.mkdir(parents=True, exist_ok=True)
        (manifest_dir / "manifest.json").write_text(text)
        client.log_artifact(job.run_id, str(manifest_dir / "manifest.json"), artifact_dir)
        if new_set:
            tags = {"chroma.embedding_set_id": job.set_id, "chroma.embedding_set_ids": ids}
            tags.update({f"chroma.set.{k}": str(v) for k, v in job.embedding_set.items()})
            for k, v in tags.items():
                client.set_tag(job.run_id, k, v)
        job.path.unlink(missing_ok=True)  # attached: the staged copy is no longer needed

    # ---- the end of a run ----------------------------------------------------------------------------------------

    def finish(self, run_id: str, tracking_uri: str) -> None:
        """Attach what is pending for ``run_id`` within ``attach_timeout``; warn about what could not be."""
        for rid, set_id in [k for k in list(self._production) if k[0] == run_id]:
            self._flush_production((rid, tracking_uri), set_id)
        if self._queries.get(run_id):
            self._enqueue(
                _Job(
                    run_id,
                    tracking_uri,
                    "metrics",
                    metrics=self._metrics(run_id),
                    step=int(self._queries[run_id]["queries"]),
                )
            )
        with self._lock:
            retry = self._failed.pop(run_id, [])
        for job in retry:
            self._enqueue(job)
        self._worker.flush(self.attach_timeout)
        left = self._worker.pending
        with self._lock:
            failed = [j for j in self._failed.get(run_id, []) if j.kind == "batch"]
        if left or failed:
            self._warn(
                "%d batch file(s) could not be attached to MLflow run %s (tracking server down or "
                "slow); they are kept in %s. Attach them later with "
                "MlflowClient().log_artifacts(run_id, that_folder, 'chroma').",
                len(failed) + left,
                run_id,
                self.staging / run_id,
            )

    def close(self) -> None:
        """Stop taking jobs; what is queued is still attached, in the background (this does not wait)."""
        self._worker.close(0)


def _patched_end_run(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def end_run(*args: Any, **kwargs: Any) -> Any:
        attacher = _state["attacher"]
        run = mlflow.active_run()
        if attacher is not None and run is not None:
            with capture_internal_exceptions("finishing Chroma's MLflow attachments"):
                attacher.finish(run.info.run_id, mlflow.get_tracking_uri())
        return original(*args, **kwargs)  # exactly once; its exceptions are the user's

    end_run._chroma_patch = True  # type: ignore[attr-defined]
    return end_run


def autolog(
    embedding_set: dict[str, Any] | None = None,
    *,
    disable: bool = False,
    silent: bool = False,
    exclusive: bool = False,
    attach_timeout: float = 30.0,
    query_batch_size: int = 1000,
) -> None:
    """Attach Chroma's embeddings to active MLflow runs (see the module docstring).

    ``embedding_set`` limits attaching to that one set (default: all). ``disable=True`` reverts everything;
    calling ``autolog()`` again replaces the previous configuration. ``silent`` suppresses Chroma's autolog
    warnings; ``exclusive`` keeps Chroma out of runs the user created (as in MLflow: only runs created by an
    autologging integration receive anything).
    """
    with _lock:
        hooks.unregister(_NAME)
        old = _state["attacher"]
        if old is not None:
            old.close()
            _state["attacher"] = None
        original = _state["original_end_run"]
        if original is not None:
            _fluent.end_run = original
            mlflow.end_run = original
            _state["original_end_run"] = None
        if disable:
            return
        only = EmbeddingSet.from_dict(embedding_set).id if embedding_set else None
        attacher = _Attacher(
            only_set=only,
            silent=silent,
            exclusive=exclusive,
            attach_timeout=attach_timeout,
            query_batch_size=query_batch_size,
        )
        _state["attacher"] = attacher
        original = _fluent.end_run
        _state["original_end_run"] = original
        patched = _patched_end_run(original)
        _fluent.end_run = patched  # ActiveRun.__exit__ looks it up here
        mlflow.end_run = patched
        hooks.register(_NAME, attacher)


def load_embeddings(
    run_id: str, *, tracking_uri: str | None = None, dst: str | os.PathLike[str] | None = None
) -> dict[str, RunEmbeddings]:
    """Read a run's embedding sets back: ``{set_id: RunEmbeddings}``, vectors as numpy arrays plus records."""
    client = MlflowClient(tracking_uri=tracking_uri)
    folder = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="chroma-run-"))
    try:
        local = Path(client.download_artifacts(run_id, "chroma", str(folder)))
    except Exception as exc:
        from chroma_core.errors import ChromaError

        raise ChromaError(f"run {run_id} has no Chroma embeddings (no 'chroma/' artifacts): {exc}") from exc
    out: dict[str, RunEmbeddings] = {}
    for set_dir in sorted(p for p in local.iterdir() if p.is_dir()):
        manifest = json.loads((set_dir / "manifest.json").read_text())
        vectors, records, files = [], [], []
        for entry in manifest["files"]:
            header, recs, problems = read_batch(set_dir / entry["name"])
            if problems:
                logger.warning("%s in run %s: %s", entry["name"], run_id, "; ".join(map(str, problems)))
            vectors.append(recs.vectors)
            files.append(entry["name"])
            for i in range(len(recs)):
                records.append(
                    {
                        "id": recs.ids[i],
                        "input_uri": recs.input_uris[i],
                        "inferences": recs.inferences[i],
                        "label": recs.labels[i],
                        "time": recs.times[i],
                        "mode": header.mode,
                    }
                )
        dim = vectors[0].shape[1] if vectors else 0
        out[manifest["set_id"]] = RunEmbeddings(
            manifest["set_id"],
            manifest["embedding_set"],
            np.concatenate(vectors) if vectors else np.empty((0, dim), np.float32),
            records,
            files,
        )
    if dst is None:
        shutil.rmtree(folder, ignore_errors=True)
    return out
