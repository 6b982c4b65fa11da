"""Blocking transport for poke mode and start calls: one ``requests.Session`` per hook, reused.

``requests`` is imported on first use: DAG files import the sensors at every parse and never send.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_taskstatus.models.base import ApiError, RawResponse
from airflow_provider_taskstatus.models.failures import causes, request_error, timeout_error, tunnel_refusal
from airflow_provider_taskstatus.models.start import StartRequest
from airflow_provider_taskstatus.transport.network import Route
from airflow_provider_taskstatus.transport.policy import (
    RetryPolicy,
    monotonic_deadline,
    request_timeout,
    slot_wait,
)
from airflow_provider_taskstatus.transport.throttle import AccountThrottle

if TYPE_CHECKING:
    import requests

T = TypeVar("T")


class SyncTransport:
    def __init__(self, policy: RetryPolicy) -> None:
        import requests

        self.policy = policy
        self.session: requests.Session = requests.Session()

    def get(
        self,
        url: str,
        headers: Mapping[str, str],
        interpret: Callable[[RawResponse], T],
        throttle: AccountThrottle,
        route: Route,
        deadline: float | None = None,
    ) -> T:
        """GET ``url`` and interpret the answer, paced by the account throttle, retrying per the policy.

        With ``deadline`` (epoch seconds), nothing runs past it. requests times each socket operation,
        not the whole request: connecting and reading may each take the time left (loopback or a
        kept-alive connection connects at once).
        """
        until = monotonic_deadline(deadline)
        return self._exchange("GET", url, headers, None, interpret, throttle, route, until)

    def post(
        self,
        url: str,
        headers: Mapping[str, str],
        request: StartRequest,
        interpret: Callable[[RawResponse], T],
        throttle: AccountThrottle,
        route: Route,
    ) -> T:
        """Send a start call, retried only where it provably created nothing (see ``Retrying``).

        It goes on a new connection: a kept-alive one that the server closed meanwhile would fail
        mid-send, which reads like a request that may have arrived.
        """
        self.session.close()  # drops the idle connections; the session opens new ones
        if request.content_type:
            headers = {**headers, "Content-Type": request.content_type}
        body = request.body
        return self._exchange(request.method, url, headers, body, interpret, throttle, route, None, request)

    def _exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        interpret: Callable[[RawResponse], T],
        throttle: AccountThrottle,
        route: Route,
        until: float | None,
        creates: StartRequest | None = None,
    ) -> T:
        retrying = self.policy.start(throttle, creates=creates)
        while True:
            time.sleep(slot_wait(throttle, until, url))
            try:
                timeout = request_timeout(self.policy.timeout, until, url)
                result = interpret(self._send(method, url, headers, body, timeout, route))
                throttle.accepted()
                return result
            except ApiError as error:
                time.sleep(retrying.backoff(error, until))

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
        route: Route,
    ) -> RawResponse:
        import requests
        from urllib3.exceptions import ConnectTimeoutError  # NewConnectionError (refused, DNS) is one

        try:
            response = self.session.request(
                method,
                url,
                headers=dict(headers),
                data=body,
                timeout=timeout,
                verify=route.verify,
                proxies=route.proxies,
            )
        except requests.RequestException as error:
            unsent = any(isinstance(cause, ConnectTimeoutError) for cause in causes(error))
            if isinstance(error, requests.exceptions.ProxyError):  # the proxy, not the API
                raise tunnel_refusal(error) or request_error(url, error, unsent=True) from None
            if isinstance(error, requests.Timeout):
                raise timeout_error(url, timeout, cut=timeout < self.policy.timeout, unsent=unsent) from None
            tls = isinstance(error, requests.exceptions.SSLError)
            raise request_error(url, error, tls=tls, unsent=unsent, verify=route.verify) from None
        return RawResponse(response.status_code, response.headers, response.content)

    def close(self) -> None:
        self.session.close()
