"""Coze OAuth service apps (JWT): the settings, the signed JWT, the token exchange and its answer.

A service app signs a short JWT (RS256) with its private key and exchanges it at
``POST /api/permission/oauth2/token`` (``/api/permission/oauth2/account/{account_id}/token`` for an
enterprise account) for an access token, sent as ``Bearer`` like any other token. Each JWT is
single-use (its ``jti``), there is no refresh token, and the answer's ``expires_in`` is an absolute
Unix time. Pure: the transports send the request built here and hand back the answer.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_taskstatus.models.base import (
    ApiError,
    ErrorKind,
    RawResponse,
    TaskStatusError,
    encode,
    header,
    id_note,
    json_object,
    kind_for_http_status,
    shorten,
    unusable_body_error,
)
from airflow_provider_taskstatus.models.start import StartRequest

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH = "/api/permission/oauth2/token"
ACCOUNT_TOKEN_PATH = "/api/permission/oauth2/account/{account_id}/token"
#: Coze's default and longest access token lifetimes (seconds).
DEFAULT_DURATION = 900
MAX_DURATION = 86399
#: How long a signed JWT is valid: it is sent at once, and used once.
JWT_LIFETIME = 300
#: A token is renewed this long before it expires (at most; a tenth of a short token's lifetime).
RENEW_MARGIN = 60.0

#: The connection extras of a service app; ``oauth_app_id`` switches a connection to it.
APP_ID = "oauth_app_id"
KEY_ID = "oauth_public_key_id"
DURATION = "oauth_duration_seconds"
ACCOUNT_ID = "oauth_account_id"

_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", re.DOTALL)

_KEY_HINT = (
    f"check the connection's OAuth app id ({APP_ID}), public key id ({KEY_ID}) and the private key "
    "in its password field: they must belong to one active key pair of the service app"
)
#: What each OAuth error code asks the user to fix.
ERROR_HINTS = {
    "invalid_client": _KEY_HINT,
    "access_deny": (
        f"the service app may not act for this account: check {ACCOUNT_ID} and the app's "
        "authorization in the Coze console"
    ),
    "invalid_request": (
        "check this machine's clock (the JWT carries its issue and expiry times) and "
        f"{DURATION} (1 to {MAX_DURATION})"
    ),
    "unsupported_grant_type": "the host may not be a Coze API (it does not know the JWT grant)",
}
ERROR_KINDS = {
    "invalid_client": ErrorKind.AUTH,
    "access_deny": ErrorKind.AUTH,
    "invalid_request": ErrorKind.BAD_REQUEST,
    "unsupported_grant_type": ErrorKind.BAD_REQUEST,
    "internal_error": ErrorKind.TRANSIENT,
}


class OAuthError(ApiError):
    """The token exchange failed: the API call it was for was not sent."""


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    #: Epoch seconds, as Coze's ``expires_in`` says.
    expires_at: float
    obtained_at: float

    def usable(self, now: float) -> bool:
        """Still usable at ``now`` (epoch seconds), with a margin: renewed shortly before it expires."""
        margin = min(RENEW_MARGIN, (self.expires_at - self.obtained_at) / 10)
        return now < self.expires_at - margin


@dataclass(frozen=True)
class OAuthApp:
    """A connection's service app: who signs (``app_id``, ``key_id``, the key) and for what."""

    conn_id: str
    app_id: str
    key_id: str
    private_key: str = field(repr=False)
    duration: int = DEFAULT_DURATION
    account_id: str | None = None

    @property
    def cache_key(self) -> str:
        """The token's identity in a process: the app, key pair, account and lifetime asked for."""
        digest = hashlib.sha256(self.private_key.encode()).hexdigest()[:16]
        return f"{self.app_id}|{self.key_id}|{digest}|{self.account_id or ''}|{self.duration}"

    @property
    def what(self) -> str:
        account = f", account {self.account_id}" if self.account_id else ""
        return f"Coze OAuth token exchange (app {self.app_id}, key {shorten(self.key_id, 24)}{account})"

    def jwt(self, base_url: str, now: float) -> str:
        """A fresh single-use JWT for ``base_url``'s host; :class:`TaskStatusError` on a bad key."""
        import jwt  # PyJWT: comes with Airflow; imported only by OAuth connections

        claims = {
            "iss": self.app_id,
            "aud": audience(base_url),
            "iat": int(now),
            "exp": int(now) + JWT_LIFETIME,
            "jti": secrets.token_hex(32),
        }
        headers = {"kid": self.key_id, "typ": "JWT"}
        return jwt.encode(claims, load_private_key(self.conn_id, self.private_key), "RS256", headers)

    def exchange_request(self) -> StartRequest:
        """The exchange call. Single-use like a start call (its JWT is spent once it arrives), but a
        lost answer leaves no task behind: the next call signs a new JWT."""
        path = (
            ACCOUNT_TOKEN_PATH.format(account_id=encode(self.account_id)) if self.account_id else TOKEN_PATH
        )
        body = {"grant_type": GRANT_TYPE, "duration_seconds": self.duration}
        return StartRequest(
            path,
            json.dumps(body).encode(),
            "application/json",
            what=self.what,
            where_to_check="nothing: no task is created",
            leaves_task=False,
        )

    def interpret_exchange(self, response: RawResponse, now: float) -> AccessToken:
        """The access token, or :class:`OAuthError` naming the setting to fix."""
        body = json_object(response)
        logid = header(response.headers, "x-tt-logid")
        if body is not None and response.status < 400:
            token, expires = body.get("access_token"), body.get("expires_in")
            if isinstance(token, str) and token and isinstance(expires, int | float) and _number(expires):
                return AccessToken(token, float(expires), now)
        if body is None or not any(key in body for key in ("error_code", "error", "code")):
            error = unusable_body_error("Coze", response, logid, "logid")
            raise OAuthError(error.kind, f"{self.what} failed: {error}", http_status=response.status)
        code = str(body.get("error_code") or body.get("error") or body.get("code") or "")
        text = body.get("error_message") or body.get("error_description") or body.get("msg") or "no message"
        kind = ERROR_KINDS.get(code) or (
            kind_for_http_status(response.status) if response.status >= 400 else None
        )
        if kind is None:  # a 2xx without a token: a glitch, like a status answer without its status
            kind = ErrorKind.TRANSIENT
        hint = ERROR_HINTS.get(code) or (_KEY_HINT if kind is ErrorKind.AUTH else None)
        raise OAuthError(
            kind,
            f"{self.what} refused in connection {self.conn_id!r}: {code or 'error'} (HTTP {response.status}): "
            f"{shorten(str(text), 300)}{'; ' + hint if hint else ''}{id_note('logid', logid)}",
            http_status=response.status,
            code=code or None,
            request_id=logid,
        )


def audience(base_url: str) -> str:
    """The API host as the request's ``Host`` header names it: a default port is left out."""
    parts = urlsplit(base_url)
    default = {"https": 443, "http": 80}[parts.scheme]
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def oauth_app(conn_id: str, secret: str, extra: Mapping[str, Any]) -> OAuthApp | None:
    """The service app a connection names, checked; None for a token connection.

    :class:`TaskStatusError` names the setting to fix. The key itself is parsed at the first
    exchange (:func:`load_private_key`), not here: a triggerer builds a connection per trigger.
    """
    app_id = _text(conn_id, extra, APP_ID)
    if app_id is None:
        if "-----BEGIN" in secret:
            raise TaskStatusError(
                f"Connection {conn_id!r}: its password field holds a PEM key, but {APP_ID} is not set: "
                f"set {APP_ID} and {KEY_ID} to use a Coze OAuth service app, or put an access token there."
            )
        return None
    key_id = _text(conn_id, extra, KEY_ID)
    if key_id is None:
        raise TaskStatusError(
            f"Connection {conn_id!r}: extra {KEY_ID} is missing: give the public key's id (fingerprint) "
            "shown next to it on the service app's page in the Coze console."
        )
    if "PRIVATE KEY" not in secret:
        raise TaskStatusError(
            f"Connection {conn_id!r} names OAuth app {app_id}, so its password field must hold the app's "
            "private key (PEM, -----BEGIN PRIVATE KEY-----…), and it holds something else."
        )
    account_id = _text(conn_id, extra, ACCOUNT_ID)
    return OAuthApp(conn_id, app_id, key_id, normalize_pem(secret), _duration(conn_id, extra), account_id)


def _text(conn_id: str, extra: Mapping[str, Any], name: str) -> str | None:
    value = extra.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TaskStatusError(
            f"Connection {conn_id!r}: extra {name} must be text (an id), got {type(value).__name__}."
        )
    return str(value).strip()


def _duration(conn_id: str, extra: Mapping[str, Any]) -> int:
    value = extra.get(DURATION)
    if value is None or value == "":
        return DEFAULT_DURATION
    try:
        seconds = int(str(value).strip()) if not isinstance(value, bool) else 0
    except ValueError:
        seconds = 0
    if not 1 <= seconds <= MAX_DURATION:
        raise TaskStatusError(
            f"Connection {conn_id!r}: extra {DURATION} must be a whole number of seconds from 1 to "
            f"{MAX_DURATION} (Coze's longest token), got {value!r}."
        )
    return seconds


def normalize_pem(text: str) -> str:
    """A PEM block as pasted anywhere: a password box drops its line breaks, JSON may keep ``\\n``
    as two characters. The base64 body is rewrapped; the key is never put in a message."""
    text = text.replace("\\n", "\n")
    found = _PEM.search(text)
    if found is None:
        return text
    label, body = found.group(1), re.sub(r"\s+", "", found.group(2))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


@functools.lru_cache(maxsize=16)
def load_private_key(conn_id: str, pem: str) -> Any:
    """The RSA private key, parsed once per process (parsing checks the key, which takes a while)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise TaskStatusError(
            f"Connection {conn_id!r}: the private key in the password field is encrypted: store it "
            "unencrypted there (Airflow keeps the password field as a secret)."
        ) from None
    except (ValueError, UnsupportedAlgorithm) as error:
        raise TaskStatusError(
            f"Connection {conn_id!r}: the password field does not hold a readable PEM private key "
            f"({type(error).__name__}): paste the whole private_key.pem the Coze console gave when the "
            "key pair was made."
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TaskStatusError(
            f"Connection {conn_id!r}: the private key is not an RSA key: Coze signs its JWTs with RS256."
        )
    return key
