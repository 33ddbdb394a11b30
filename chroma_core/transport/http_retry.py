"""How hard the HTTP transport tries: the policy, what is worth retrying, and how long to wait between tries.

Built from tenacity's pieces (never its defaults, which retry forever without waiting): a bounded number of
attempts within a total deadline, exponential backoff with jitter, and the server's ``Retry-After`` where it gave one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import time
from collections.abc import Callable

import requests
import tenacity
from tenacity import retry_if_exception, stop_after_attempt, stop_before_delay, wait_exponential, wait_random

__all__ = ["RETRY_STATUSES", "RetryPolicy", "Retryable", "parse_retry_after", "retrying_for"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How hard the transport tries. These field defaults are the only defaults."""

    attempts: int = 6
    deadline: float = 60.0  # seconds, for all attempts of one call together
    initial_wait: float = 0.25
    max_wait: float = 10.0
    jitter: float = 0.5
    connect_timeout: float = 3.05
    read_timeout: float = 30.0
    max_retry_after: float = 30.0  # a Retry-After longer than this is capped (and still bounded by the deadline)
    # gzip request bodies: None means "unless the service is on loopback", where compressing embeddings (which
    # barely compress) costs CPU and saves no network.
    compress: bool | None = None


class Retryable(Exception):
    """A response worth retrying (429/502/503/504), with the server's Retry-After if it gave one."""

    def __init__(self, response: requests.Response, retry_after: float | None) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def _is_transient(exc: BaseException) -> bool:
    # A body cut off mid-response (ChunkedEncodingError: the service died while answering) is a broken connection
    # too; every write route is idempotent by batch or record id, so sending it again stores nothing twice.
    return isinstance(
        exc, (Retryable, requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    )


class _WaitRetryAfter(tenacity.wait.wait_base):
    """Wait as long as the server asked (Retry-After, capped), else fall back to exponential backoff."""

    def __init__(self, fallback: tenacity.wait.wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.cap)
        return float(self.fallback(retry_state))


def retrying_for(
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    before_sleep: Callable[[tenacity.RetryCallState], None],
) -> tenacity.Retrying:
    """A tenacity ``Retrying`` that follows ``policy`` (errors re-raised as they were after the last attempt)."""
    return tenacity.Retrying(
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.deadline),
        wait=_WaitRetryAfter(
            wait_exponential(multiplier=policy.initial_wait, max=policy.max_wait) + wait_random(0, policy.jitter),
            cap=policy.max_retry_after,
        ),
        retry=retry_if_exception(_is_transient),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
