"""What a request is authorized with: a fixed secret, or a Coze OAuth access token kept per process.

An OAuth access token is shared by every hook of its account in the process, sync and async: a
triggerer with a thousand waits of one service app exchanges one JWT per token lifetime, not one
per wait or per poll. Concurrent callers that find no usable token wait for one exchange (threads
on a lock; coroutines on one task per event loop, which a cancelled waiter does not cancel).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_taskstatus.models.base import ApiError, ErrorKind, RawResponse
from airflow_provider_taskstatus.models.coze_oauth import AccessToken, OAuthApp, OAuthError
from airflow_provider_taskstatus.transport.network import Route
from airflow_provider_taskstatus.transport.policy import RetryPolicy
from airflow_provider_taskstatus.transport.throttle import AccountThrottle

if TYPE_CHECKING:
    from airflow_provider_taskstatus.transport.sync import SyncTransport


@dataclass(frozen=True)
class Masking:
    """How secrets made at run time reach Airflow's log masker, from a thread or an event loop."""

    sync: Callable[[str], None]
    async_: Callable[[str], Awaitable[None]]


#: Seconds a refused exchange (a wrong or revoked key, an app the account does not allow) is
#: remembered per account: the account's other waits fail with that answer instead of each signing
#: and sending a JWT of its own; the refusal is not one a retry within a minute would change.
REFUSAL_MEMORY = 60.0

#: The API's answer to a token it no longer takes (expired early, revoked): renew, then resend once.
REJECTED_TOKEN_CODES = frozenset({"4100"})


@dataclass(frozen=True)
class StaticCredentials:
    """A token or API key from the connection's password field: the same headers for every request."""

    headers: Mapping[str, str] = field(repr=False)

    def get(self, transport: SyncTransport) -> Mapping[str, str]:
        return self.headers

    async def aget(self) -> Mapping[str, str]:
        return self.headers

    def rejected(self, error: ApiError, sent: Mapping[str, str]) -> bool:
        """Whether ``error`` is a token worth renewing (and the request worth resending): never here."""
        return False


class TokenCache:
    """The access tokens of this process, one per OAuth account (:attr:`OAuthApp.cache_key`)."""

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._flights: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Task[AccessToken]]
        ] = weakref.WeakKeyDictionary()
        #: Exchanges this process made (successful or not), per account: what tests and logs count.
        self.exchanges: dict[str, int] = {}
        #: Per account: until when (monotonic) its last refused exchange stands, and the refusal.
        self._refusals: dict[str, tuple[float, OAuthError]] = {}

    def usable(self, key: str) -> AccessToken | None:
        token = self._tokens.get(key)
        return token if token is not None and token.usable(time.time()) else None

    def get(self, key: str, exchange: Callable[[], AccessToken], fresh: bool = False) -> AccessToken:
        """The account's usable token, exchanging (once, whatever the number of threads) if none is;
        ``fresh``: exchange whatever is kept or remembered (Test Connection tests the key, not a cache)."""
        token = None if fresh else self.usable(key)
        if token is not None:
            return token
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            token = None if fresh else self.usable(key)
            if token is None:
                if not fresh:
                    self._raise_refusal(key)
                self.exchanges[key] = self.exchanges.get(key, 0) + 1
                try:
                    token = self._tokens[key] = exchange()
                except OAuthError as error:
                    self._remember(key, error)
                    raise
            return token

    async def aget(self, key: str, exchange: Callable[[], Awaitable[AccessToken]]) -> AccessToken:
        """:meth:`get` for coroutines: the loop's callers share one exchange."""
        token = self.usable(key)
        if token is not None:
            return token
        flights = self._flights.setdefault(asyncio.get_running_loop(), {})
        flight = flights.get(key)
        if flight is None:
            self._raise_refusal(key)
            self.exchanges[key] = self.exchanges.get(key, 0) + 1
            flight = flights[key] = asyncio.ensure_future(exchange())
            flight.add_done_callback(lambda done: self._landed(key, flights, done))
        return await asyncio.shield(flight)

    def _landed(
        self, key: str, flights: dict[str, asyncio.Task[AccessToken]], flight: asyncio.Task[AccessToken]
    ) -> None:
        if flights.get(key) is flight:
            del flights[key]
        if flight.cancelled():
            return
        error = flight.exception()
        if error is None:
            self._tokens[key] = flight.result()
        elif isinstance(error, OAuthError):
            self._remember(key, error)

    def _remember(self, key: str, error: OAuthError) -> None:
        if not error.retryable:  # a transient failure is for the next poll to ride out
            self._refusals[key] = (time.monotonic() + REFUSAL_MEMORY, error)

    def _raise_refusal(self, key: str) -> None:
        refusal = self._refusals.get(key)
        if refusal is not None and time.monotonic() < refusal[0]:
            error = refusal[1]
            raise OAuthError(
                error.kind,
                error.message,
                http_status=error.http_status,
                code=error.code,
                request_id=error.request_id,
            )

    def discard(self, key: str, value: str) -> None:
        """Forget the account's token if it is still ``value`` (a rejected one), not one another
        caller has put in its place since."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.value == value:
                del self._tokens[key]

    def clear(self) -> None:
        self._tokens.clear()
        self.exchanges.clear()
        self._refusals.clear()


#: The process's tokens.
TOKENS = TokenCache()


class OAuthCredentials:
    """A Coze service app's access token, exchanged when the process has no usable one."""

    def __init__(
        self,
        app: OAuthApp,
        base_url: str,
        static_headers: Mapping[str, str],
        throttle: AccountThrottle,
        route: Route,
        policy: RetryPolicy,
        mask: Masking,
    ) -> None:
        self.app = app
        self.base_url = base_url
        self._static = dict(static_headers)
        self.throttle = throttle
        self.route = route
        self.policy = policy
        #: Registers each JWT and token with Airflow's log masker before anything could log it.
        self.mask = mask

    def __repr__(self) -> str:
        return f"OAuthCredentials(app_id={self.app.app_id!r}, key_id={self.app.key_id!r})"

    def _headers(self, token: AccessToken) -> dict[str, str]:
        return {**self._static, "Authorization": f"Bearer {token.value}"}

    def get(self, transport: SyncTransport, fresh: bool = False) -> Mapping[str, str]:
        """Headers with a usable token, exchanged through ``transport`` when needed (or ``fresh``)."""
        return self._headers(TOKENS.get(self.app.cache_key, lambda: self._exchange(transport), fresh))

    async def aget(self) -> Mapping[str, str]:
        return self._headers(await TOKENS.aget(self.app.cache_key, self._aexchange))

    def rejected(self, error: ApiError, sent: Mapping[str, str]) -> bool:
        """Whether the API refused the token these headers carried (4100): then it is dropped, and
        the caller resends once with whatever token the process has or exchanges next."""
        if error.kind is not ErrorKind.AUTH or error.code not in REJECTED_TOKEN_CODES:
            return False
        TOKENS.discard(self.app.cache_key, sent.get("Authorization", "").removeprefix("Bearer "))
        return True

    def _exchange(self, transport: SyncTransport) -> AccessToken:
        request, jwt = self.app.exchange_request(), self.app.jwt(self.base_url, time.time())
        self.mask.sync(jwt)
        with _told_as_exchange(self.app):
            token: AccessToken = transport.post(
                self.base_url + request.path,
                _bearer(jwt),
                request,
                self._interpret,
                self.throttle,
                self.route,
            )
        self.mask.sync(token.value)
        return token

    async def _aexchange(self) -> AccessToken:
        from airflow_provider_taskstatus.transport import aio  # aiohttp: kept out of DAG parsing

        request, jwt = self.app.exchange_request(), self.app.jwt(self.base_url, time.time())
        await self.mask.async_(jwt)
        with _told_as_exchange(self.app):
            token: AccessToken = await aio.post(
                self.base_url + request.path,
                _bearer(jwt),
                request,
                self._interpret,
                self.policy,
                self.throttle,
                self.route,
            )
        await self.mask.async_(token.value)
        return token

    def _interpret(self, response: RawResponse) -> AccessToken:
        return self.app.interpret_exchange(response, time.time())


def _bearer(jwt: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt}"}


@contextmanager
def _told_as_exchange(app: OAuthApp) -> Iterator[None]:
    """A transport failure of the exchange (timeout, refused, TLS), told as the exchange's."""
    try:
        yield
    except OAuthError:
        raise
    except ApiError as error:
        raise _failed(app, error) from None


def _failed(app: OAuthApp, error: ApiError) -> OAuthError:
    """A transport failure of the exchange, told as the exchange's."""
    return OAuthError(
        error.kind,
        f"{app.what} failed: {error}",
        http_status=error.http_status,
        code=error.code,
        request_id=error.request_id,
        retry_after=error.retry_after,
        unsent=error.unsent,
    )
