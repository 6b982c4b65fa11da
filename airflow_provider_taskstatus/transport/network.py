"""A connection's TLS and proxy settings, as each HTTP library takes them.

The proxy is resolved once per endpoint, the same way for both transports: the connection's
``proxy`` if set, else the environment (``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY``, with
``NO_PROXY``), by the rules ``requests`` applies. aiohttp is then told the result, rather than
reading the environment itself (``trust_env`` would also read ``~/.netrc`` credentials, which
aiohttp refuses to combine with the API's own ``Authorization`` header).
"""

from __future__ import annotations

import functools
import os
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from airflow_provider_taskstatus.models.base import ApiError, ErrorKind, TaskStatusError
from airflow_provider_taskstatus.models.connection import Network


@dataclass(frozen=True)
class Route:
    """Where one endpoint's requests go: ``proxy`` resolved, ``verify`` as the connection says."""

    verify: bool | str = True
    proxy: str | None = field(default=None, repr=False)
    #: aiohttp's ``ssl``, made from ``verify`` once per endpoint (not per request).
    tls: bool | ssl.SSLContext = field(default=True, repr=False, compare=False)

    @property
    def proxy_password(self) -> str | None:
        """A secret for Airflow's masker, from the connection or the environment."""
        return urlsplit(self.proxy).password if self.proxy else None

    @property
    def proxies(self) -> dict[str, str] | None:
        """``requests``' ``proxies``, given per request with ``verify``: a session's own ``verify``
        loses to ``REQUESTS_CA_BUNDLE`` in the environment."""
        return {"http": self.proxy, "https": self.proxy} if self.proxy else None


def route(conn_id: str, base_url: str, settings: Network) -> Route:
    """The route of an endpoint: its proxy from the connection or the environment; a CA bundle
    that cannot be loaded is refused here, before any request."""
    try:
        tls = ssl_for(settings.verify)
    except ApiError as error:
        raise TaskStatusError(f"Connection {conn_id!r}: {error}") from None
    return Route(settings.verify, settings.proxy or environment_proxy(base_url), tls)


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url``, by ``requests``' rules (``NO_PROXY`` may hold
    hosts, domains, ports and CIDR ranges)."""
    from requests.utils import get_environ_proxies, select_proxy

    proxy: str | None = select_proxy(url, get_environ_proxies(url))
    return proxy or None


def ssl_for(verify: bool | str) -> bool | ssl.SSLContext:
    """aiohttp's ``ssl`` argument; a CA bundle's context is made once per file version (each
    holds the parsed certificates: a triggerer's thousand waits share one)."""
    if isinstance(verify, bool):
        return verify
    try:
        return _context(verify, os.stat(verify).st_mtime_ns)
    except (OSError, ssl.SSLError) as error:
        raise ApiError(
            ErrorKind.TLS,
            f"extra verify names {verify!r}, which is not a readable CA bundle ({error.strerror or error}): "
            "give a PEM file of CA certificates, true or false",
        ) from None


@functools.lru_cache(maxsize=16)
def _context(path: str, _version: int) -> ssl.SSLContext:
    if os.path.isdir(path):
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)
