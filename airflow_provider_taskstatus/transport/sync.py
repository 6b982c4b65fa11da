"""Blocking transport for poke mode: one ``requests.Session`` per hook, reused across pokes.

``requests`` is imported on first use: DAG files import the sensors at every parse and never send.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_taskstatus.models.base import ApiError, ErrorKind, RawResponse, failure_reason
from airflow_provider_taskstatus.transport.policy import RetryPolicy
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
    ) -> T:
        """GET ``url`` and interpret the answer, paced by the account throttle, retrying per the policy."""
        retrying = self.policy.start(throttle)
        while True:
            time.sleep(throttle.reserve(time.monotonic()))
            try:
                return interpret(self._send(url, headers))
            except ApiError as error:
                time.sleep(retrying.backoff(error))

    def _send(self, url: str, headers: Mapping[str, str]) -> RawResponse:
        import requests

        try:
            response = self.session.get(url, headers=dict(headers), timeout=self.policy.timeout)
        except requests.Timeout:
            raise ApiError(
                ErrorKind.TRANSIENT, f"No answer from {url} within {self.policy.timeout:g} s"
            ) from None
        except requests.RequestException as error:
            raise ApiError(ErrorKind.TRANSIENT, f"Request to {url} failed: {failure_reason(error)}") from None
        return RawResponse(response.status_code, response.headers, response.content)

    def close(self) -> None:
        self.session.close()
