"""The one retry policy, shared by the sync and async transports and by the polling loop.

It also keeps each request inside its wait's deadline: the request timeout is cut to the time
left, and no throttle wait or backoff runs past it.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_taskstatus.models.base import ApiError, DeadlineError, ErrorKind
from airflow_provider_taskstatus.models.failures import deadline_error, retry_cut, uncertain_start
from airflow_provider_taskstatus.models.start import StartRequest
from airflow_provider_taskstatus.transport.throttle import AccountThrottle

log = logging.getLogger(__name__)

#: A server may ask for a long pause; waiting longer than this inside one poll holds a worker slot.
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up.

    :param timeout: seconds one HTTP request may take.
    :param max_retries: retries of one request on a transient error, within one poll (a rate limit
        is not retried: the account slows down instead).
    :param backoff: first backoff ceiling in seconds; it doubles per retry (full jitter below it).
    :param max_backoff: highest backoff ceiling. A ``Retry-After`` header may ask for more.
    :param max_consecutive_failures: polls in a row that may end in a transient error before the
        wait is given up; any clean poll resets the count.
    """

    timeout: float = 30.0
    max_retries: int = 2
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_consecutive_failures: int = 5

    @classmethod
    def shared(cls, **fields: Any) -> RetryPolicy:
        """An equal policy made before, if any: a triggerer holds thousands with the same values."""
        return _interned(cls(**fields))

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError(f"Retry timings must be positive: {self}")
        if self.max_retries < 0 or self.max_consecutive_failures < 1:
            raise ValueError(f"max_retries must be >= 0 and max_consecutive_failures >= 1: {self}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, so a trigger can serialize the policy."""
        return asdict(self)

    def start(
        self,
        throttle: AccountThrottle,
        rng: Callable[[], float] = random.random,
        *,
        creates: StartRequest | None = None,
    ) -> Retrying:
        """The retry state of one request; ``creates``: the request is a start call (see :class:`Retrying`)."""
        return Retrying(self, throttle, rng, creates=creates)


class Retrying:
    """The retry state of one request: ask it how long to wait after each failure.

    A start call (``creates``) is retried only after failures that provably created nothing:

    ========================================================  =========================================
    failure of a start call                                   outcome
    ========================================================  =========================================
    no connection made (refused, DNS, TLS handshake)          retried (``max_retries``); TLS: fails
    rate limit (HTTP 429, Coze 4013/4020/…, TrueWatch         retried at the account's slower pace,
    ``ft.*CurrentLimiting``)                                  after any ``Retry-After``
    any other 4xx / error code (token, entity, arguments,     fails at once: nothing was created, and a
    import conflict)                                          retry would be refused the same way
    timeout after connecting, connection dropped, 5xx,        fails at once with ``UNCERTAIN``: a task
    an answer without a usable body or without the task id    may exist; never retried
    ========================================================  =========================================

    A token exchange (``leaves_task=False``) is single-use too, but its lost answer leaves nothing
    behind: it fails as the transient error it met, and the next call signs a new JWT.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        throttle: AccountThrottle,
        rng: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        creates: StartRequest | None = None,
    ) -> None:
        self.policy = policy
        self.throttle = throttle
        self.rng = rng
        self.clock = clock
        self.creates = creates
        self.retries = 0

    def backoff(self, error: ApiError, until: float | None = None) -> float:
        """Seconds to wait before retrying; re-raises ``error`` when it is fatal or the budget is spent,
        annotated when the wait would end past ``until`` (monotonic seconds).

        A rate limit is not retried (but for a start call): it slows the whole account (through its
        throttle), and the slower pace, and any ``Retry-After`` pause, apply to the account's next
        request, whoever sends it. Retrying at once would only add a request the server is likely to
        refuse too.
        """
        if isinstance(error, DeadlineError):
            raise error  # out of time: another try has none either
        ceiling = min(self.policy.max_backoff, self.policy.backoff * 2**self.retries)
        delay: float = self.rng() * ceiling
        if error.retry_after is not None:
            delay = max(delay, min(error.retry_after, MAX_RETRY_AFTER))
        if error.kind is ErrorKind.RATE_LIMITED:
            pause = None if error.retry_after is None else min(error.retry_after, MAX_RETRY_AFTER)
            self.throttle.limited(self.clock(), pause)
            if self.creates is None:
                raise error
            # A refused start created nothing, and no later poll would send it again: retry it.
        elif self.creates is not None and error.kind is ErrorKind.TRANSIENT and not error.unsent:
            if self.creates.leaves_task:
                raise uncertain_start(error, self.creates) from None
            raise error  # a single-use request that may have arrived: not sent again
        if not error.retryable or self.retries >= self.policy.max_retries:
            raise error
        if until is not None and self.clock() + delay >= until:
            raise retry_cut(error) from None
        self.retries += 1
        log.warning(
            "Retry %d/%d in %.1f s after %s error: %s",
            self.retries,
            self.policy.max_retries,
            delay,
            error.kind.value,
            error,
        )
        return delay


def monotonic_deadline(deadline: float | None) -> float | None:
    """A wait's deadline (epoch seconds, as triggers carry it) on the monotonic clock requests are
    paced by, so that a clock step during the wait moves neither."""
    return None if deadline is None else deadline - time.time() + time.monotonic()


def slot_wait(throttle: AccountThrottle, until: float | None, url: str) -> float:
    """Seconds until the account's next free slot; :class:`DeadlineError` if it opens too late."""
    wait = throttle.reserve(time.monotonic(), until)
    if wait is None:
        raise paced_past(url)
    return wait


def paced_past(url: str) -> DeadlineError:
    """The account's next slot opens at or after the wait's deadline: the request is not sent."""
    return deadline_error(url, "the account's request pacing or rate-limit pause reaches past it")


def request_timeout(limit: float, until: float | None, url: str) -> float:
    """The request timeout, cut to the time left before ``until``; :class:`DeadlineError` if none is."""
    if until is None:
        return limit
    left = until - time.monotonic()
    if left <= 0:
        raise deadline_error(url)
    return left if left < limit else limit


@functools.lru_cache(maxsize=256)
def _interned(policy: RetryPolicy) -> RetryPolicy:
    return policy
