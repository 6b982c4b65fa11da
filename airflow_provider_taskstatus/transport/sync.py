"""Blocking transport for poke mode: one ``requests.Session`` per hook, reused across pokes.

``requests`` is imported on first use: DAG files import the sensors at every parse and never send.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_taskstatus.models.base import ApiError, RawResponse
from airflow_provider_taskstatus.models.failures import request_error, timeout_error
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
        deadline: float | None = None,
    ) -> T:
        """GET ``url`` and interpret the answer, paced by the account throttle, retrying per the policy.

        With ``deadline`` (epoch seconds), nothing runs past it. requests times each socket operation,
        not the whole request: connecting and reading may each take the time left (loopback or a
        kept-alive connection connects at once).
        """
        until = monotonic_deadline(deadline)
        retrying = self.policy.start(throttle)
        while True:
            time.sleep(slot_wait(throttle, until, url))
            try:
                timeout = request_timeout(self.policy.timeout, until, url)
                result = interpret(self._send(url, headers, timeout))
                throttle.accepted()
                return result
            except ApiError as error:
                time.sleep(retrying.backoff(error, until))

    def _send(self, url: str, headers: Mapping[str, str], timeout: float) -> RawResponse:
        import requests

        try:
            response = self.session.get(url, headers=dict(headers), timeout=timeout)
        except requests.Timeout:
            raise timeout_error(url, timeout, cut=timeout < self.policy.timeout) from None
        except requests.RequestException as error:
            tls = isinstance(error, requests.exceptions.SSLError)
            raise request_error(url, error, tls=tls) from None
        return RawResponse(response.status_code, response.headers, response.content)

    def close(self) -> None:
        self.session.close()
