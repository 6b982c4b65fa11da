"""Requests that got no HTTP answer, classified and told in one line: the cause, TLS, the deadline.

Both transports build their errors here, so a refused connection, a bad certificate or a wait's
deadline reads the same in poke mode and in a trigger.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterator

from airflow_provider_taskstatus.models.base import (
    ApiError,
    DeadlineError,
    ErrorKind,
    kind_for_http_status,
    proxy_refusal,
    shorten,
)
from airflow_provider_taskstatus.models.hosts import origin
from airflow_provider_taskstatus.models.start import StartRequest

#: A URL in a message: room for any real endpoint, but not for a 5,000-character task id.
URL_LIMIT = 160

#: TLS errors that mean the peer dropped the connection, not that the setup is wrong: transient.
_DROPPED = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)

#: OpenSSL's reasons when an https:// URL reaches a port that answers plain HTTP.
_PLAIN_HTTP = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})

#: "[SSL: CERTIFICATE_VERIFY_FAILED] " before, and " (_ssl.c:1006)" after, the words.
_SSL_NOISE = re.compile(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$")


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps, outermost first: requests and aiohttp wrap the cause two or three
    layers deep, in ``reason`` / ``os_error`` / ``args`` as often as in ``__cause__``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        inner = getattr(current, "os_error", None) or getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in current.args if isinstance(arg, BaseException)), None)
        current = inner or current.__cause__ or current.__context__


def failure_reason(error: BaseException) -> str:
    """The innermost cause in words: "Connection refused", "certificate verify failed: self-signed
    certificate"; the class names the libraries show say nothing."""
    tls = _ssl_cause(error)
    if tls is not None:
        return _SSL_NOISE.sub("", str(tls)) or type(tls).__name__
    reason = type(error).__name__
    for current in causes(error):
        if isinstance(current, OSError) and (current.errno or current.strerror):
            errno = current.errno
            # A DNS failure has a negative errno and its own text; others read better from the errno.
            reason = os.strerror(errno) if errno and errno > 0 else str(current.strerror or current)
    return reason


#: How urllib3 tells that an HTTP proxy refused a CONNECT tunnel (e.g. 407: its credentials).
_TUNNEL_REFUSED = re.compile(r"Tunnel connection failed: (\d{3})\s*([^'\")]*)")


def tunnel_refusal(error: BaseException) -> ApiError | None:
    """The proxy's refusal of a tunnel, if that is what ``error`` is: nothing reached the API."""
    for current in causes(error):
        found = _TUNNEL_REFUSED.search(str(current))
        if found:
            status = int(found.group(1))
            reason = found.group(2).strip() or "refused"
            return ApiError(kind_for_http_status(status), proxy_refusal(status, reason), unsent=True)
    return None


def _ssl_cause(error: BaseException) -> ssl.SSLError | None:
    """The innermost ``ssl.SSLError`` (``ssl.CertificateError`` is one): aiohttp's wrappers are
    SSLErrors too, with a text of their own around the real one."""
    found = None
    for current in causes(error):
        if isinstance(current, ssl.SSLError):
            found = current
    return found


def request_error(
    url: str, error: BaseException, *, tls: bool = False, unsent: bool = False, verify: bool | str = True
) -> ApiError:
    """A request that got no answer, classified; ``tls``: the client library called it a TLS failure;
    ``unsent``: it failed while connecting, so the request never reached the server; ``verify``: the
    connection's setting, which a certificate failure's message names.

    A TLS failure is a setup problem (the certificate, or an https:// URL on a plain-HTTP port):
    every retry would repeat it, so it fails at once. A connection the peer dropped mid-handshake
    stays transient.
    """
    reason = failure_reason(error)
    found = _ssl_cause(error)
    if (found is None and not tls) or isinstance(found, _DROPPED):
        return ApiError(
            ErrorKind.TRANSIENT, f"Request to {shorten(url, URL_LIMIT)} failed: {reason}", unsent=unsent
        )
    where = origin(url)
    return ApiError(
        ErrorKind.TLS,
        f"TLS handshake with {where} failed: {reason}{_tls_hint(where, found, reason, verify)}",
        unsent=True,
    )


def _tls_hint(where: str, found: ssl.SSLError | None, reason: str, verify: bool | str) -> str:
    # ``reason`` is set only on errors the ssl module raised itself, not on copies aiohttp makes.
    if getattr(found, "reason", None) in _PLAIN_HTTP or "wrong version number" in reason:
        plain = "http://" + where.partition("://")[2]
        return (
            f"; the host seems to speak plain HTTP: if that is intended (e.g. the local emulator), "
            f"write {plain} in the connection's host"
        )
    if "self-signed" in reason or "self signed" in reason or "local issuer" in reason:
        if isinstance(verify, str):
            return (
                f"; the CA bundle the connection's extra verify names ({verify}) does not vouch for "
                "this server's certificate: give the bundle of the CA that issued it"
            )
        return (
            "; if the server's certificate comes from a private CA, set the connection's extra verify "
            "to the path of that CA's bundle (PEM)"
        )
    return ""


def timeout_error(url: str, timeout: float, *, cut: bool, unsent: bool = False) -> ApiError:
    """No answer within ``timeout``; ``cut``: the wait's deadline had shortened it, so say that;
    ``unsent``: the time ran out while connecting, before the request was sent."""
    if cut:
        return deadline_error(url)
    what = "Could not connect to" if unsent else "No answer from"
    return ApiError(
        ErrorKind.TRANSIENT, f"{what} {shorten(url, URL_LIMIT)} within {timeout:g} s", unsent=unsent
    )


def deadline_error(url: str, why: str = "") -> DeadlineError:
    """The wait's deadline came before an answer from ``url``; ``why``: what held the request back."""
    return DeadlineError(
        f"No answer from {shorten(url, URL_LIMIT)} before the wait's deadline{'; ' + why if why else ''}"
    )


def uncertain_start(error: ApiError, request: StartRequest) -> ApiError:
    """A start call that failed after its request may have reached the service (a timeout, a dropped
    connection, a 5xx, an answer without the task id): a retry could create a second remote task."""
    return ApiError(
        ErrorKind.UNCERTAIN,
        f"{request.what} failed, and the request may have reached the service first: {error}. A remote "
        f"task may exist, so it was not retried; check {request.where_to_check} before running this "
        "task again",
        http_status=error.http_status,
        code=error.code,
        request_id=error.request_id,
    )


def retry_cut(error: ApiError) -> ApiError:
    """``error``, noting that the wait's deadline leaves no time for the retry it deserved.

    Still the API's failure (same kind), so a polling loop counts it like any failed poll.
    """
    return ApiError(
        error.kind,
        f"{error}; the wait's deadline leaves no time to retry",
        http_status=error.http_status,
        code=error.code,
        request_id=error.request_id,
        retry_after=error.retry_after,
    )
