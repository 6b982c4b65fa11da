"""Round-robin for the requests of one account in one event loop.

When an account's pace is the bottleneck (hundreds of triggers on a TrueWatch key allowed 20 a
minute), the requests due queue here in arrival order and go one per slot, each slot worked out at
its turn from the account's current rate: a rate cut by a rate limit spaces the queue at once, and
a wait that was just served queues behind every other before it is served again, so none starves.
An account with a free slot and nobody queued costs nothing.
"""

from __future__ import annotations

import asyncio
import collections

from airflow_provider_taskstatus.models.base import DeadlineError
from airflow_provider_taskstatus.models.failures import deadline_error
from airflow_provider_taskstatus.transport.policy import paced_past
from airflow_provider_taskstatus.transport.throttle import AccountThrottle


class Turnstile:
    """The queue of one account's requests in one event loop."""

    __slots__ = ("_loop", "_queue", "_throttle", "_timer")

    def __init__(self, throttle: AccountThrottle, loop: asyncio.AbstractEventLoop) -> None:
        self._throttle = throttle
        self._loop = loop
        self._queue: collections.deque[tuple[asyncio.Future[None], float | None, str]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    async def turn(self, until: float | None, url: str) -> None:
        """Return when this request may go; :class:`DeadlineError` if its turn would come after ``until``.

        ``until`` is on the monotonic clock, which is also the event loop's.
        """
        now = self._loop.time()
        if not self._queue and self._take(now, until, url):
            return
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.append((future, until, url))
        self._arm()
        if until is None:
            await future
            return
        try:
            await asyncio.wait_for(future, max(0.0, until - now))
        except asyncio.TimeoutError:
            raise deadline_error(url, "its turn in the account's request queue comes too late") from None

    def _take(self, now: float, until: float | None, url: str) -> bool:
        """Take the account's slot if it is open now; :class:`DeadlineError` if it opens too late."""
        start = self._throttle.free_at(now)
        if until is not None and start >= until:
            raise paced_past(url)
        if start > now:
            return False
        self._throttle.reserve(now)
        return True

    def _arm(self) -> None:
        if self._timer is None and self._queue:
            self._timer = self._loop.call_at(self._throttle.free_at(self._loop.time()), self._release)

    def _release(self) -> None:
        """The slot is open: let the first caller still waiting through."""
        self._timer = None
        now = self._loop.time()
        while self._queue:
            future, until, url = self._queue[0]
            if future.done():  # cancelled, or out of time
                self._queue.popleft()
                continue
            try:
                if not self._take(now, until, url):
                    break  # the rate was cut meanwhile: wait for the new slot
            except DeadlineError as error:
                self._queue.popleft()
                future.set_exception(error)
                continue
            self._queue.popleft()
            future.set_result(None)
            break
        self._arm()
