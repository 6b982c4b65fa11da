"""A connection's extra settings, checked: each bad value is refused with a message naming it.

Shared by every API. Errors are :class:`TaskStatusError` (not ``ValueError``): they are the user's
to fix in the connection, and Test Connection shows them as they are.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_taskstatus.models.base import TaskStatusError

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


@dataclass(frozen=True)
class Network:
    """How requests reach the API, the same in both transports."""

    #: True: the default trust store; False: no certificate check; text: a CA bundle (PEM file or
    #: directory) that vouches for the server, for a private certificate authority.
    verify: bool | str = True
    #: The proxy URL, credentials included (a secret); None: straight to the API (or as the
    #: environment's ``HTTPS_PROXY`` / ``NO_PROXY`` say, which the transports resolve).
    proxy: str | None = field(default=None, repr=False)


def network(conn_id: str, extra: Mapping[str, Any]) -> Network:
    """The extras ``verify`` and ``proxy``."""
    return Network(_verify(conn_id, extra.get("verify")), _proxy(conn_id, extra.get("proxy")))


def _verify(conn_id: str, value: Any) -> bool | str:
    if value is None or value == "" or value is True:
        return True
    if value is False:
        return False
    text = str(value).strip()
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    path = os.path.expanduser(text)
    if not os.path.exists(path):
        raise TaskStatusError(
            f"Connection {conn_id!r}: extra verify names {text!r}, which does not exist on this machine: "
            "give the path of the CA bundle (PEM) on every machine that runs the task (workers and "
            "triggerers), true (the default trust store) or false (no certificate check)."
        )
    return path


def _proxy(conn_id: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(str(value).strip()) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        scheme = f" (scheme {parts.scheme!r})" if parts is not None and parts.scheme else ""
        raise TaskStatusError(
            f"Connection {conn_id!r}: extra proxy must be an http:// proxy URL such as "
            f"http://proxy.example:3128 or http://user:password@proxy.example:3128{scheme}."
        )
    try:
        parts.port  # noqa: B018  a bad port raises here
    except ValueError:
        raise TaskStatusError(
            f"Connection {conn_id!r}: extra proxy has a bad port: {shown_proxy(value)}."
        ) from None
    return str(value).strip()


def shown_proxy(proxy: str) -> str:
    """The proxy URL for a message: its credentials masked."""
    scheme, sep, rest = proxy.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


def console_url(conn_id: str, extra: Mapping[str, Any]) -> str | None:
    """The extra ``console_url``: the web console of a private deployment."""
    value = extra.get("console_url")
    if value is None or value == "":
        return None
    if (
        not isinstance(value, str)
        or urlsplit(value).scheme not in ("http", "https")
        or not urlsplit(value).netloc
    ):
        raise TaskStatusError(
            f"Connection {conn_id!r}: extra console_url must be an http(s) URL such as "
            f"https://console.example.internal, got {value!r}."
        )
    return value.rstrip("/")


def requests_per_minute(conn_id: str, extra: Mapping[str, Any]) -> float | None:
    """The extra ``requests_per_minute``: the account's budget (0: none); None if unset."""
    value = extra.get("requests_per_minute")
    if value is None or value == "":
        return None
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = math.nan
    if not rate >= 0 or math.isinf(rate) or isinstance(value, bool):
        raise TaskStatusError(
            f"Connection {conn_id!r}: extra requests_per_minute must be a number of requests a minute "
            f"(0: no pacing), got {value!r}."
        )
    return rate
