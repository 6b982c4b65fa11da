"""The status model shared by every API: typed results, error kinds, and the adapter interface."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

if TYPE_CHECKING:
    from airflow_provider_taskstatus.models.start import Started, StartRequest


class State(str, enum.Enum):
    """Where a remote task stands, once the API's own vocabulary is translated."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    #: Finished, but some resources did not make it (TrueWatch ``ok`` with failures).
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: A status value the docs do not list: keep waiting, the sensor timeout bounds it.
    UNKNOWN = "unknown"


class ErrorKind(str, enum.Enum):
    """Why a status request did not produce a status. Only the last two are worth retrying."""

    AUTH = "auth"
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"
    #: The TLS handshake failed (certificate, or an https:// URL on a plain-HTTP port): a setup
    #: problem that every retry would repeat.
    TLS = "tls"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    #: A start call failed after its request may have reached the service: whether it created a
    #: remote task is unknown, so it is neither retried nor worth retrying blindly.
    UNCERTAIN = "uncertain"

    @property
    def retryable(self) -> bool:
        return self in (ErrorKind.RATE_LIMITED, ErrorKind.TRANSIENT)


class TaskStatusError(Exception):
    """The wait could not reach a verdict: an API error, a bad connection, an unexpected event.

    Deliberately not an ``AirflowException``: a sensor's ``soft_fail`` must not turn a bad token
    into a skipped task, and normal task retries should apply (see the outcome table in the README).
    """


class ApiError(TaskStatusError):
    """A status request that failed, classified."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        unsent: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        #: The request provably never reached the service (no connection was made): even a call
        #: that creates something may be retried.
        self.unsent = unsent
        self.message = message
        self.http_status = http_status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind.retryable

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ApiError({self.kind.value!r}, {self.message!r})"


class DeadlineError(ApiError):
    """The wait's own deadline came first: a request cut short, or not sent, for lack of time.

    Transient (the API did nothing wrong), but retrying is pointless: the transports never do, and
    the polling loop does not count it against the failure budget.
    """

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.TRANSIENT, message)


@dataclass(frozen=True)
class RawResponse:
    """What a transport hands to the model: enough to classify, nothing transport-specific."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class TaskStatus:
    """A classified status response."""

    state: State
    #: The API's own status value, e.g. ``in_progress`` or ``ok``.
    remote_status: str
    #: A human sentence for logs and failure messages; names every failure the API reported.
    message: str
    #: The API's ``data`` / ``content`` object: the sensor's XCom value on success.
    payload: dict[str, Any] = field(default_factory=dict)
    #: Coze ``logid`` / TrueWatch ``traceId``: support asks for it.
    request_id: str | None = None


class StatusApi(Protocol):
    """What an API adapter declares. Everything else is shared."""

    #: Human name used in messages, e.g. "Coze".
    name: str
    #: What the API calls its request id in error reports, e.g. "logid".
    request_id_label: str
    #: The request budget the API documents per account (credential), if it documents one.
    requests_per_minute: float | None
    #: Whether a connection may name a Coze OAuth service app instead of a token.
    oauth: bool

    def base_url(self, host: str | None, port: int | None, extra: Mapping[str, Any]) -> str:
        """The API root from a connection's fields; ``ValueError`` says what to fix."""
        ...

    def status_path(self, task_id: str) -> str:
        """Path and query of the status call, the task id percent-encoded."""
        ...

    def auth_headers(self, secret: str) -> dict[str, str]: ...

    def console_url(self, base_url: str) -> str | None:
        """The web console that goes with the API at ``base_url``, if known."""
        ...

    def interpret(self, response: RawResponse, task_id: str) -> TaskStatus:
        """Classify a response; raise :class:`ApiError` when it carries no status."""
        ...

    def interpret_start(self, response: RawResponse, request: StartRequest) -> Started:
        """Classify the answer to a start call ``request``; raise :class:`ApiError` when it started nothing."""
        ...


def shorten(text: str, limit: int = 80) -> str:
    """``text``, or its first ``limit`` characters, "…" and its length: a 5,000-character task id
    must not fill an error message or a log line."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def validate_task_id(task_id: object, what: str = "task id") -> str:
    """Refuse an id that cannot name a remote task, before any request is made."""
    if not isinstance(task_id, str | int) or isinstance(task_id, bool):
        raise ValueError(f"The {what} must be a string, got {type(task_id).__name__}.")
    text = str(task_id)
    if not text.strip():
        raise ValueError(f"The {what} is empty: pass the id returned by the call that started the task.")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"The {what} {shorten(text)!r} contains control characters.")
    if text in (".", ".."):
        # HTTP clients resolve these as path steps even when percent-encoded.
        raise ValueError(f"The {what} {text!r} is not a task id.")
    return text


def encode(value: str) -> str:
    """Percent-encode a value as exactly one path segment or query value (``/?#&=+``, ``..``, spaces)."""
    return quote(value, safe="")


def json_object(response: RawResponse) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` when it is not one (HTML error page, truncation)."""
    try:
        data = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def kind_for_http_status(status: int) -> ErrorKind:
    """Classify by HTTP status alone: the fallback when the body names no error of its own."""
    if status in (401, 403, 407):  # 407: the proxy's credentials
        return ErrorKind.AUTH
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status == 408 or status >= 500:
        return ErrorKind.TRANSIENT
    return ErrorKind.BAD_REQUEST


def unusable_body_error(api: str, response: RawResponse, request_id: str | None, label: str) -> ApiError:
    """An answer without a usable envelope: an HTML error page from a proxy, a truncated body.

    With an error status the status decides; with a success status it is a glitch worth retrying.
    """
    status = response.status
    if status == 407:
        return ApiError(
            ErrorKind.AUTH, proxy_refusal(status, "Proxy Authentication Required"), http_status=status
        )
    kind = kind_for_http_status(status) if status >= 400 else ErrorKind.TRANSIENT
    snippet = response.body[:120].decode("utf-8", "replace").strip()
    # The API's own refusals have its envelope: a bare 401 may well be a proxy's (some send 401, not 407).
    proxy = (
        "; if this machine reaches the API through an HTTP proxy, check the proxy's credentials"
        if status == 401
        else ""
    )
    return ApiError(
        kind,
        f"{api} API answered HTTP {status} without a valid {api} envelope"
        f"{': ' + repr(snippet) if snippet else ''}{proxy}{id_note(label, request_id)}",
        http_status=status,
        request_id=request_id,
        retry_after=parse_retry_after(response.headers),
    )


def proxy_refusal(status: int, reason: str) -> str:
    """An HTTP proxy on the way refused the request (its own answer, not the API's)."""
    return (
        f"The HTTP proxy refused the request: HTTP {status} {reason}; check the proxy and its "
        "credentials (the connection's extra proxy, or HTTPS_PROXY / HTTP_PROXY)"
    )


def envelope_error(
    api: str,
    label: str,
    kind: ErrorKind,
    code: str | None,
    text: str | None,
    hint: str | None,
    response: RawResponse,
    request_id: str | None,
) -> ApiError:
    """An error the API's envelope names, with what to fix and the id support asks for."""
    return ApiError(
        kind,
        f"{api} API error {code or '(no code)'} (HTTP {response.status}): "
        f"{shorten(str(text), 400) if text else 'no message'}"
        f"{'; ' + hint if hint else ''}{id_note(label, request_id)}",
        http_status=response.status,
        code=code,
        request_id=request_id,
        retry_after=parse_retry_after(response.headers),
    )


def status_object(
    body: dict[str, Any],
    container: str,
    key: str,
    api: str,
    label: str,
    response: RawResponse,
    request_id: str | None,
) -> tuple[dict[str, Any], str]:
    """``body[container]`` and its status value; a success envelope without them is a glitch worth retrying."""
    obj = body.get(container)
    remote = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(obj, dict) or not isinstance(remote, str):
        raise ApiError(
            ErrorKind.TRANSIENT,
            f"{api} API answered success without {container}.{key}{id_note(label, request_id)}",
            http_status=response.status,
            request_id=request_id,
        )
    return obj, remote


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds; the HTTP-date form is rare on APIs and ignored."""
    value = header(headers, "retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup over any mapping."""
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def id_note(label: str, value: str | None) -> str:
    return f" ({label}: {value})" if value else ""


def compact(value: Any, limit: int = 400) -> str:
    """A short one-line rendering of an API value for a failure message."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
