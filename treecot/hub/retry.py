"""Retries for Hub calls: exponential backoff on connection errors, timeouts, HTTP 408, 429 and 5xx."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from treecot.hub.redact import redact

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass
class RetryPolicy:
    """Exponential backoff: wait ``base_delay * 2**i`` (capped at ``max_delay``) before retry ``i + 1``."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must be >= 0")

    def delay(self, retry_index: int) -> float:
        return min(self.max_delay, self.base_delay * (2**retry_index))


def is_retryable(error: BaseException) -> bool:
    """True for errors worth retrying: connection problems, timeouts, HTTP 408/429/5xx."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(error, HfHubHTTPError):
        status = getattr(error.response, "status_code", None)
        return status in (408, 429) or (status is not None and 500 <= status < 600)
    transient: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    try:
        import httpx2

        transient += (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)
    except ImportError:  # pragma: no cover - huggingface_hub < 2 uses httpx
        import httpx

        transient += (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
    return isinstance(error, transient)


def with_retries(
    fn: Callable[..., _T], *args: Any, what: str = "hub call", retry: RetryPolicy | None = None
) -> _T:
    """Call ``fn(*args)``, retrying transient failures (:func:`is_retryable`) with exponential backoff."""
    policy = retry or RetryPolicy()
    for attempt in range(policy.attempts):
        try:
            return fn(*args)
        except Exception as error:
            if not is_retryable(error) or attempt == policy.attempts - 1:
                raise
            delay = policy.delay(attempt)
            message = redact(f"{type(error).__name__}: {error}".splitlines()[0])
            logger.warning(
                "%s failed (%s); retry %d/%d in %.1fs", what, message, attempt + 1, policy.attempts - 1, delay
            )
            _sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


_sleep = time.sleep  # patched by tests
