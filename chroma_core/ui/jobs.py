"""Maps computed in the background, so that a set too large to project at once never holds a request (or the page).

:meth:`Maps.get` answers at once with either a finished :class:`~chroma_core.ui.projection.Projection` or the
progress of the job computing it: a small set (``INLINE_POINTS`` points at most, PCA) is projected in the request;
a larger one, or any UMAP map, in a daemon thread that reports how many points it has placed. The finished maps are
kept per set, revision, counts and method (a few at most, least recently used dropped), so a second load is a copy.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from typing import Any

from chroma_core.logs import logger
from chroma_core.ui.projection import Projection, project, set_info
from chroma_core.ui.reducers import reducer

__all__ = ["INLINE_POINTS", "Maps", "Progress"]

#: Sets up to this many points get their PCA map within the request (100,000 points take about half a second).
INLINE_POINTS = 200_000
#: A finished job nobody asked for again is dropped after this many seconds.
_ABANDONED = 600.0


@dataclasses.dataclass
class Progress:
    """A map being computed: ``done`` of ``total`` points placed (0 while the projection is being fitted)."""

    set_id: str
    method: str
    total: int
    done: int = 0
    started: float = dataclasses.field(default_factory=time.time)
    result: Projection | None = None
    error: Exception | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "projecting",
            "set_id": self.set_id,
            "method": self.method,
            "done": self.done,
            "total": self.total,
            "seconds": round(time.time() - self.started, 3),
        }


class Maps:
    """The maps of one process: finished ones (a small LRU) and the jobs computing the others."""

    def __init__(self, size: int = 4) -> None:
        self._done: OrderedDict[tuple[Any, ...], Projection] = OrderedDict()
        self._jobs: dict[tuple[Any, ...], Progress] = {}
        self._lock = threading.Lock()
        self._size = size

    def get(self, engine: Any, set_id: str, method: str) -> Projection | Progress:
        """The set's map if it is ready (or small enough to make now), else the progress of its job.

        An error of the job is raised here once (the next call starts a new job).
        """
        info = set_info(engine.store, set_id)  # an unknown set is an error now, not a job
        reducer(method)  # so is an unknown method, or UMAP without its extra
        key = (id(engine), set_id, info.revision, info.training, info.production, method)
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
            job = self._jobs.get(key)
            if job is not None and (job.result is not None or job.error is not None):
                del self._jobs[key]
                if job.error is not None:
                    raise job.error
                assert job.result is not None
                return self._keep(key, job.result)
            if job is not None:
                return job
            self._prune()
            points = info.training + info.production
            if method == "umap" or points > INLINE_POINTS:
                job = self._jobs[key] = Progress(set_id, method, points)
                threading.Thread(target=self._run, args=(engine, key, job), daemon=True).start()
                return job
        result = project(engine.store, set_id, method=method)
        with self._lock:
            return self._keep(key, result)

    def _prune(self) -> None:
        stale = time.time() - _ABANDONED
        for key in [k for k, j in self._jobs.items() if (j.result or j.error) is not None and j.started < stale]:
            del self._jobs[key]

    def _keep(self, key: tuple[Any, ...], result: Projection) -> Projection:
        self._done[key] = result
        while len(self._done) > self._size:
            self._done.popitem(last=False)
        return result

    def _run(self, engine: Any, key: tuple[Any, ...], job: Progress) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            job.result = project(engine.store, job.set_id, method=job.method, progress=progress)
        except Exception as exc:  # handed to the next request for this map, which raises it
            logger.warning("the %s map of set %s failed: %s", job.method, job.set_id[:12], exc)
            job.error = exc
