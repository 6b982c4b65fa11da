"""Async transport for triggers: one pooled aiohttp session per event loop, shared by every trigger.

Two things make a thousand waiting triggers cheap: kept-alive connections (no new TCP and TLS
handshake per poll), and coalescing (triggers waiting on the same remote task through the same
account share one request per poll interval).

Only triggers (and async hook calls) import this module, never a DAG file: aiohttp is imported at
the top, so that its cold import happens when the triggerer loads the trigger class, not inside a
running trigger, where it would stall the event loop of every other trigger.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import yarl

from airflow_provider_taskstatus.models.base import (
    ApiError,
    DeadlineError,
    RawResponse,
    kind_for_http_status,
    proxy_refusal,
)
from airflow_provider_taskstatus.models.failures import deadline_error, request_error, timeout_error
from airflow_provider_taskstatus.models.hosts import origin
from airflow_provider_taskstatus.models.start import StartRequest
from airflow_provider_taskstatus.transport.network import Route
from airflow_provider_taskstatus.transport.policy import RetryPolicy, monotonic_deadline, request_timeout
from airflow_provider_taskstatus.transport.throttle import AccountThrottle
from airflow_provider_taskstatus.transport.turnstile import Turnstile

T = TypeVar("T")

#: Connections kept per host: enough for many triggers, bounded so a burst cannot flood a server.
LIMIT_PER_HOST = 32

#: Answers older than this are dropped from the coalescing memory (checked every few hundred answers).
RECENT_HORIZON = 3600.0
PRUNE_EVERY = 512

#: One account's request for one URL.
_Key = tuple[AccountThrottle, str]


@dataclass
class Pool:
    """What the triggers of one event loop share: the session and the coalescing state."""

    session: aiohttp.ClientSession
    users: int = 0
    inflight: dict[_Key, asyncio.Future[Any]] = field(default_factory=dict)
    #: When each in-flight request gives up at the latest (its waiter's deadline, monotonic; inf: none).
    ends: dict[_Key, float] = field(default_factory=dict)
    #: How many leases wait on each key: an answer only its own waiter asks for is not remembered.
    watchers: dict[_Key, int] = field(default_factory=dict)
    #: The last answer per key and when it arrived (monotonic seconds).
    recent: dict[_Key, tuple[float, Any]] = field(default_factory=dict)
    answers: int = 0
    #: One semaphore per origin, as wide as the connector's per-host limit.
    lanes: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    #: Where each account's requests take turns for its pace.
    turnstiles: dict[AccountThrottle, Turnstile] = field(default_factory=dict)

    def remember(self, key: _Key, result: Any) -> None:
        now = time.monotonic()
        self.recent[key] = (now, result)
        self.answers += 1
        if self.answers % PRUNE_EVERY == 0:  # a long-lived triggerer sees endless task ids
            self.recent = {k: v for k, v in self.recent.items() if now - v[0] < RECENT_HORIZON}

    def lane(self, url: str) -> asyncio.Semaphore:
        """Where requests beyond the connection limit wait, before aiohttp builds anything for them.

        Throughput is the same (the connector allows no more per host), but a burst of due polls
        then holds a few objects each instead of a whole request's, which the GC would promote.
        """
        where = origin(url)
        lane = self.lanes.get(where)
        if lane is None:
            lane = self.lanes[where] = asyncio.Semaphore(LIMIT_PER_HOST)
        return lane

    def turnstile(self, throttle: AccountThrottle) -> Turnstile:
        turnstile = self.turnstiles.get(throttle)
        if turnstile is None:
            turnstile = self.turnstiles[throttle] = Turnstile(throttle, asyncio.get_running_loop())
        return turnstile


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pool] = weakref.WeakKeyDictionary()


class Lease:
    """A lease on the loop's pool (``async with Lease() as pool: ...``); the last to end closes it.

    A trigger holds one for its whole wait, watching the request it repeats, so its polls reuse
    kept-alive connections; a one-off hook call gets a session that closes when the call ends.
    A plain class, not a generator: thousands of waiting triggers each hold one.
    """

    __slots__ = ("pool", "watching")

    def __init__(self, watching: _Key | None = None) -> None:
        self.watching = watching
        self.pool: Pool | None = None

    async def __aenter__(self) -> Pool:
        loop = asyncio.get_running_loop()
        pool = _pools.get(loop)
        if pool is None or pool.session.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=LIMIT_PER_HOST, keepalive_timeout=60)
            pool = _pools[loop] = Pool(aiohttp.ClientSession(connector=connector))
        pool.users += 1
        if (watching := self.watching) is not None:
            pool.watchers[watching] = pool.watchers.get(watching, 0) + 1
        self.pool = pool
        return pool

    async def __aexit__(self, *exc_info: object) -> None:
        pool, self.pool = self.pool, None
        assert pool is not None, "lease exited without being entered"
        if (watching := self.watching) is not None and (left := pool.watchers.pop(watching) - 1) > 0:
            pool.watchers[watching] = left
        pool.users -= 1
        if pool.users == 0:
            loop = asyncio.get_running_loop()
            if _pools.get(loop) is pool:
                del _pools[loop]
            await pool.session.close()


async def get(
    url: str,
    headers: Mapping[str, str],
    interpret: Callable[[RawResponse], T],
    policy: RetryPolicy,
    throttle: AccountThrottle,
    route: Route,
    reuse_within: float = 0.0,
    deadline: float | None = None,
) -> T:
    """Async twin of :meth:`SyncTransport.get <airflow_provider_taskstatus.transport.sync.SyncTransport.get>`.

    Concurrent calls for the same URL through the same account share one request; with
    ``reuse_within`` > 0, an answer younger than that many seconds is reused without a request.
    ``interpret`` must depend on the URL only, as it does for a status call. With ``deadline``
    (epoch seconds) the call ends by then, also when it waits on a request another call started.
    """
    key: _Key = (throttle, url)
    until = monotonic_deadline(deadline)
    async with Lease() as pool:
        recent = pool.recent.get(key)
        if recent is not None and time.monotonic() - recent[0] < reuse_within:
            result: T = recent[1]
            return result
        while (inflight := pool.inflight.get(key)) is not None:
            try:
                shared: T = await _join(inflight, pool.ends[key], until, url)
                return shared
            except DeadlineError:
                if until is not None and time.monotonic() >= until:
                    raise
                # The deadline of the call that started the request, not ours: ask again.
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        pool.inflight[key] = future
        pool.ends[key] = math.inf if until is None else until
        try:
            result = await _fetch(
                pool, pool.session, "GET", url, headers, None, interpret, policy, throttle, route, until
            )
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        else:
            future.set_result(result)
            # A lone waiter asks again only when this answer is stale: keeping it would only
            # hold memory (and objects the GC must scan) through the pause.
            if pool.watchers.get(key) != 1:
                pool.remember(key, result)
            return result
        finally:
            del pool.inflight[key]
            del pool.ends[key]


async def _join(inflight: asyncio.Future[T], ends: float, until: float | None, url: str) -> T:
    """Wait for a request another call started, but not past our own deadline.

    Shielded: one waiter leaving (cancelled, or out of time) must not cancel the request the others
    share. The timer costs a few objects, so it is set only when the request may outlast us.
    """
    if until is None or ends <= until:
        return await asyncio.shield(inflight)
    left = until - time.monotonic()
    if left <= 0:
        raise deadline_error(url)
    try:
        return await asyncio.wait_for(asyncio.shield(inflight), left)
    except asyncio.TimeoutError:
        raise deadline_error(url) from None


async def post(
    url: str,
    headers: Mapping[str, str],
    request: StartRequest,
    interpret: Callable[[RawResponse], T],
    policy: RetryPolicy,
    throttle: AccountThrottle,
    route: Route,
) -> T:
    """Async twin of :meth:`SyncTransport.post <airflow_provider_taskstatus.transport.sync.SyncTransport.post>`.

    Paced in turn with the loop's other requests of the account, but sent on a connection of its
    own (closed after the call): a kept-alive one the server closed meanwhile would fail mid-send,
    which reads like a request that may have arrived.
    """
    if request.content_type:
        headers = {**headers, "Content-Type": request.content_type}
    async with (
        Lease() as pool,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
    ):
        return await _fetch(
            pool,
            session,
            request.method,
            url,
            headers,
            request.body,
            interpret,
            policy,
            throttle,
            route,
            None,
            request,
        )


async def _fetch(
    pool: Pool,
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    interpret: Callable[[RawResponse], T],
    policy: RetryPolicy,
    throttle: AccountThrottle,
    route: Route,
    until: float | None,
    creates: StartRequest | None = None,
) -> T:
    retrying = None  # made on the first failure only: most polls have none
    turnstile = pool.turnstile(throttle)
    while True:
        await turnstile.turn(until, url)
        try:
            async with pool.lane(url):
                # Cut after the lane: the time spent queueing for a connection counts too.
                timeout = request_timeout(policy.timeout, until, url)
                cut = timeout < policy.timeout
                response = await _send(session, method, url, headers, body, timeout, cut, route)
            result = interpret(response)
            throttle.accepted()
            return result
        except ApiError as error:
            retrying = retrying or policy.start(throttle, creates=creates)
            await asyncio.sleep(retrying.backoff(error, until))


async def _send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout: float,
    cut: bool,
    route: Route,
) -> RawResponse:
    # The policy's timeout is one cached object; one cut to a deadline is made for this request only.
    client_timeout = aiohttp.ClientTimeout(total=timeout) if cut else _timeout(timeout)
    try:
        # The URL arrives percent-encoded, task id included: yarl must not re-encode it.
        request = session.request(
            method,
            yarl.URL(url, encoded=True),
            headers=headers,
            data=body,
            timeout=client_timeout,
            ssl=route.tls,  # credentials in route.proxy go as Proxy-Authorization
            proxy=route.proxy,
        )
        async with request as response:
            return RawResponse(response.status, dict(response.headers), await response.read())
    except asyncio.TimeoutError:
        raise timeout_error(url, timeout, cut=cut) from None
    except aiohttp.ClientHttpProxyError as error:  # the proxy refused the tunnel: nothing sent
        kind = kind_for_http_status(error.status)
        raise ApiError(kind, proxy_refusal(error.status, error.message), unsent=True) from None
    except aiohttp.ClientError as error:
        # Failing to connect (refused, DNS, certificate) sent nothing; anything later may have.
        unsent = isinstance(error, aiohttp.ClientConnectorError)
        tls = isinstance(error, aiohttp.ClientSSLError)
        raise request_error(url, error, tls=tls, unsent=unsent, verify=route.verify) from None


@functools.lru_cache(maxsize=64)
def _timeout(total: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total)
