"""What a Coze OAuth token exchange checks: the service apps' keys, the JWT, the request body.

Pure functions and values, no server: :mod:`.oauth` keeps the state (apps, tokens, spent ``jti``s)
and answers the HTTP calls, and its docstring says which check answers which error. Each check
raises :class:`OAuthError` with the code, HTTP status and a sentence for ``error_message``; none
of them ever quotes the JWT.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .validation import SpecError, check_keys

TOKEN_PATH = "/api/permission/oauth2/token"
ACCOUNT_TOKEN_PATH = "/api/permission/oauth2/account/{account_id}/token"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_DURATION, MAX_DURATION = 900, 86399
#: How far ahead of the emulator's clock a JWT's ``iat`` may be (clock skew).
IAT_LEEWAY = 60
ISSUED = "issued"
INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
ACCESS_DENY = "access_deny"
INTERNAL_ERROR = "internal_error"
ERROR_STATUS = {
    INVALID_REQUEST: 400,
    INVALID_CLIENT: 401,
    UNSUPPORTED_GRANT_TYPE: 400,
    ACCESS_DENY: 403,
    INTERNAL_ERROR: 500,
}
APP_KEYS = ("app_id", "public_keys", "token_lifetime", "account_ids")


class OAuthError(Exception):
    """An exchange refused with ``code``; HTTP status from :data:`ERROR_STATUS` (500 if unknown) unless given."""

    def __init__(self, code: str, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.http_status = http_status or ERROR_STATUS.get(code, 500)


def load_public_key(kid: str, pem: str | bytes) -> RSAPublicKey:
    """The RSA public key in ``pem``; ValueError naming ``kid`` if it is not one."""
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SpecError(f"public key {kid!r} is not a PEM public key: {exc}") from None
    if not isinstance(key, RSAPublicKey):
        raise SpecError(f"public key {kid!r}: RS256 needs an RSA key, got {type(key).__name__}")
    return key


@dataclass(frozen=True)
class OAuthApp:
    """A service app: its id, public keys by kid (PEM), a cap on token lifetime, its accounts (None: any).

    Raises :class:`~.validation.SpecError` (a ValueError) on a value it cannot use, a bad PEM included.
    """

    app_id: str
    public_keys: Mapping[str, str | bytes]
    token_lifetime: float | None = None
    account_ids: Iterable[str] | None = None
    keys: dict[str, RSAPublicKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.app_id, str) or not self.app_id:
            raise SpecError("app_id must be a non-empty string")
        if not isinstance(self.public_keys, Mapping) or not self.public_keys:
            raise SpecError("public_keys must map at least one kid to a PEM public key")
        keys = {}
        for kid, pem in self.public_keys.items():
            if not isinstance(kid, str) or not kid or not isinstance(pem, str | bytes):
                raise SpecError("public_keys must map kids (non-empty strings) to PEM public keys")
            keys[kid] = load_public_key(kid, pem)
        life = self.token_lifetime
        if life is not None and (
            isinstance(life, bool) or not isinstance(life, int | float) or not 0 < life < math.inf
        ):
            raise SpecError(f"token_lifetime must be a positive number of seconds or null, got {life!r}")
        accounts = None if self.account_ids is None else list(self.account_ids)
        if isinstance(self.account_ids, str) or not all(isinstance(a, str) and a for a in accounts or ()):
            raise SpecError("account_ids must be a list of non-empty strings or null (any account)")
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "public_keys", dict(self.public_keys))
        object.__setattr__(self, "account_ids", frozenset(accounts) if accounts else None)

    @classmethod
    def from_json(cls, body: object) -> OAuthApp:
        """A ``POST /_emulator/oauth/apps`` body."""
        if not isinstance(body, dict):
            raise SpecError("body must be a JSON object")
        check_keys(body, APP_KEYS, "oauth app")
        return cls(**body)


def bearer_jwt(authorization: str) -> str:
    """The JWT of an ``Authorization: Bearer <JWT>`` header."""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise OAuthError(INVALID_CLIENT, "the Authorization header must be 'Bearer <JWT>'")
    return credential.strip()


def jwt_header(token: str) -> dict[str, Any]:
    """The JWT's header, unverified: its ``kid`` says which key to verify it with."""
    try:
        return dict(jwt.get_unverified_header(token))
    except jwt.PyJWTError:
        raise OAuthError(INVALID_CLIENT, "the Bearer credential is not a JWT") from None


def verified_claims(
    token: str, header: dict[str, Any], app: OAuthApp | None, revoked: bool
) -> dict[str, Any]:
    """The payload of a JWT signed with a live key of ``app`` (the app its ``kid`` names, None if no
    app has that key); the checks that answer ``invalid_client``."""
    if header.get("alg") != "RS256" or header.get("typ") != "JWT":
        raise OAuthError(INVALID_CLIENT, "the JWT header must say alg RS256 and typ JWT")
    kid = header.get("kid")
    if app is None or not isinstance(kid, str):
        raise OAuthError(INVALID_CLIENT, f"no OAuth app has a public key with kid {kid!r}")
    if revoked:
        raise OAuthError(INVALID_CLIENT, f"the public key {kid!r} is revoked")
    try:
        payload = jwt.api_jws.decode(token, app.keys[kid], algorithms=["RS256"])
        claims = json.loads(payload)
    except jwt.InvalidSignatureError:
        raise OAuthError(
            INVALID_CLIENT, f"the JWT's signature does not verify with public key {kid!r}"
        ) from None
    except (jwt.PyJWTError, ValueError):
        raise OAuthError(INVALID_CLIENT, "the JWT's payload is malformed") from None
    if not isinstance(claims, dict):
        raise OAuthError(INVALID_CLIENT, "the JWT's payload must be a JSON object")
    if claims.get("iss") != app.app_id:
        raise OAuthError(INVALID_CLIENT, f"iss must be the id of the app key {kid!r} belongs to")
    return claims


def checked_jti(claims: dict[str, Any], host: str, now: float) -> str:
    """The checks that answer ``invalid_request``; the ``jti``."""
    aud = claims.get("aud")
    if aud != host and not (isinstance(aud, list) and host in aud):
        raise OAuthError(
            INVALID_REQUEST, f"aud must be {host!r} (the API host the request went to), got {aud!r}"
        )
    exp, iat, jti = _unix_time(claims, "exp"), _unix_time(claims, "iat"), claims.get("jti")
    if exp <= now:
        raise OAuthError(INVALID_REQUEST, f"the JWT expired (exp {exp} is {now - exp:.0f} s ago)")
    if iat > now + IAT_LEEWAY:
        raise OAuthError(INVALID_REQUEST, f"iat {iat} is more than {IAT_LEEWAY} s in the future")
    if not isinstance(jti, str) or not jti:
        raise OAuthError(INVALID_REQUEST, "the JWT needs jti: a unique string")
    return jti


def _unix_time(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OAuthError(INVALID_REQUEST, f"the JWT needs {name}: a Unix time")
    return float(value)


def asked_duration(body: Any) -> int:
    """``duration_seconds`` of a body that asks for the JWT-bearer grant."""
    if not isinstance(body, dict):
        raise OAuthError(INVALID_REQUEST, "the body must be a JSON object")
    if body.get("grant_type") != GRANT_TYPE:
        raise OAuthError(UNSUPPORTED_GRANT_TYPE, f"grant_type must be {GRANT_TYPE!r}")
    asked = body.get("duration_seconds")
    if asked is None:
        return DEFAULT_DURATION
    if isinstance(asked, bool) or not isinstance(asked, int) or not 1 <= asked <= MAX_DURATION:
        raise OAuthError(INVALID_REQUEST, f"duration_seconds must be an integer from 1 to {MAX_DURATION}")
    return asked
