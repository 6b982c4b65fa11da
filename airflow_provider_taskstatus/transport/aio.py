"""Async transport for triggers: one pooled aiohttp session per event loop, shared by every trigger.

aiohttp is imported on first use, not at module import: DAG files import the sensors (and through
them this module) at every parse, and never need aiohttp.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_taskstatus.models.base import ApiError, ErrorKind, RawResponse
from airflow_provider_taskstatus.transport.policy import RetryPolicy
from airflow_provider_taskstatus.transport.throttle import AccountThrottle

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")

#: Connections kept per host: enough for many triggers, bounded so a burst cannot flood a server.
LIMIT_PER_HOST = 32


@dataclass
class _Shared:
    session: aiohttp.ClientSession
    users: int = 0


_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Shared] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def shared_session() -> AsyncIterator[aiohttp.ClientSession]:
    """Lease the loop's pooled session; the last lease to end closes it.

    A trigger holds a lease for its whole wait, so polls reuse kept-alive connections; a one-off
    hook call outside any trigger gets a session that closes when the call ends.
    """
    import aiohttp

    loop = asyncio.get_running_loop()
    shared = _sessions.get(loop)
    if shared is None or shared.session.closed:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=LIMIT_PER_HOST, keepalive_timeout=60)
        shared = _sessions[loop] = _Shared(aiohttp.ClientSession(connector=connector))
    shared.users += 1
    try:
        yield shared.session
    finally:
        shared.users -= 1
        if shared.users == 0:
            if _sessions.get(loop) is shared:
                del _sessions[loop]
            await shared.session.close()


async def get(
    url: str,
    headers: Mapping[str, str],
    interpret: Callable[[RawResponse], T],
    policy: RetryPolicy,
    throttle: AccountThrottle,
) -> T:
    """Async twin of :meth:`SyncTransport.get <airflow_provider_taskstatus.transport.sync.SyncTransport.get>`."""
    retrying = policy.start(throttle)
    async with shared_session() as session:
        while True:
            await asyncio.sleep(throttle.reserve(time.monotonic()))
            try:
                return interpret(await _send(session, url, headers, policy.timeout))
            except ApiError as error:
                await asyncio.sleep(retrying.backoff(error))


async def _send(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    timeout: float,
) -> RawResponse:
    import aiohttp
    import yarl

    try:
        # The URL arrives percent-encoded, task id included: yarl must not re-encode it.
        request = session.get(
            yarl.URL(url, encoded=True), headers=dict(headers), timeout=aiohttp.ClientTimeout(total=timeout)
        )
        async with request as response:
            return RawResponse(response.status, dict(response.headers), await response.read())
    except asyncio.TimeoutError:
        raise ApiError(ErrorKind.TRANSIENT, f"No answer from {url} within {timeout:g} s") from None
    except aiohttp.ClientError as error:
        raise ApiError(ErrorKind.TRANSIENT, f"Request to {url} failed: {type(error).__name__}") from None
