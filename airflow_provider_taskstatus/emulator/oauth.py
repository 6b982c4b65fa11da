"""Coze's OAuth JWT token exchange: a service app's signed JWT in, a short-lived ``czs_`` access token out.

``POST /api/permission/oauth2/token`` (and the enterprise variant
``POST /api/permission/oauth2/account/{account_id}/token``) take ``Authorization: Bearer <JWT>`` and
the JSON body ``{"grant_type": GRANT_TYPE, "duration_seconds": 900}`` (optional, 1..86399, default
900). Success is ``{"access_token": "czs_…", "expires_in": <absolute Unix time>, "token_type":
"Bearer"}``; the token is then accepted by the Coze start and status calls until that second. An
error is ``{"error_code", "error_message"}`` (with ``x-tt-logid``, like every Coze answer):

* 401 ``invalid_client``: no ``Bearer`` credential, not a JWT, a header other than ``alg`` RS256 /
  ``typ`` JWT, no ``kid`` or one no app registered, a revoked key, a bad signature, a payload
  that is not a JSON object, ``iss`` not the app the key belongs to;
* 400 ``invalid_request``: ``aud`` not the request's ``Host`` (e.g. ``127.0.0.1:8765``; over TLS
  too), ``exp`` missing or past, ``iat`` missing or more than :data:`IAT_LEEWAY` s ahead, ``jti``
  missing or already used, a body that is not a JSON object, a bad ``duration_seconds``;
* 400 ``unsupported_grant_type``: ``grant_type`` missing or not :data:`GRANT_TYPE`;
* 403 ``access_deny``: the enterprise variant with an account the app does not list (an app that
  lists none accepts any account).

The JWT is checked before the body, in the order above. A JWT whose checks all pass spends its
``jti`` whatever the answer: a client must mint a new JWT for every exchange, retries included.

Lifetime: ``min(duration_seconds, the app's token_lifetime)``; ``expires_in`` is
``ceil(now + lifetime)`` and the token works while ``time.time() < expires_in``. So a token lives at
least its lifetime (less than a second more), never longer than the integer the client was told,
and a fractional ``token_lifetime`` (tests use 2 s) is never dead on arrival.

A test can make the next exchanges fail (:meth:`OAuthBook.fail_next`, e.g. ``internal_error``
500): such an exchange is answered before any check and spends nothing.

Every exchange is recorded (:meth:`OAuthBook.exchanges`: app, kid, account, duration asked,
outcome ``issued`` or the error code, time) and appears in the request log with ``call`` ``oauth``.
Neither record holds the JWT or the access token.

This module keeps the state (:class:`OAuthBook`, owned by ``EmulatorState``); the checks are in
:mod:`.oauth_checks`, the HTTP handlers (the exchange and ``/_emulator/oauth/…``) in :mod:`.oauth_http`.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any

from .oauth_checks import (
    ACCESS_DENY,
    ERROR_STATUS,
    INVALID_REQUEST,
    ISSUED,
    OAuthApp,
    OAuthError,
    asked_duration,
    bearer_jwt,
    checked_jti,
    jwt_header,
    verified_claims,
)
from .validation import SpecError

__all__ = ["OAuthApp", "OAuthBook", "OAuthError"]

#: An HTTP status and the JSON body to send with it (as ``responses.Answer``).
Answer = tuple[int, dict[str, Any]]


class OAuthBook:
    """Registered apps, issued tokens, spent ``jti``s, pending faults and the exchanges, from any thread.

    ``apps``: those :meth:`reset` goes back to (the server's constructor's, e.g. the CLI's).
    """

    def __init__(self, apps: Iterable[OAuthApp] = ()) -> None:
        self._lock = threading.Lock()
        self._initial = list(apps)
        self._apps: dict[str, OAuthApp] = {}
        self._kids: dict[str, str] = {}
        self._revoked: set[str] = set()
        self._tokens: dict[str, int] = {}  # access token -> the expires_in it was given
        self._jtis: dict[tuple[str, str], float] = {}  # (app, jti) -> the JWT's exp
        self._faults: list[list[Any]] = []  # [code, http_status, message, times left]
        self._exchanges: list[dict[str, Any]] = []
        self.reset()

    def reset(self) -> None:
        """Only the initial apps; no revocations, tokens, spent jtis, faults or exchanges."""
        with self._lock:
            for store in (self._apps, self._kids, self._tokens, self._jtis):
                store.clear()
            self._revoked.clear()
            self._faults.clear()
            self._exchanges.clear()
        for app in self._initial:
            self.add_app(app)

    def add_app(self, app: OAuthApp) -> None:
        """Register (or redefine) an app; its keys are live again. ValueError if a kid is another app's."""
        with self._lock:
            for kid in app.keys:
                owner = self._kids.get(kid, app.app_id)
                if owner != app.app_id:
                    raise SpecError(f"kid {kid!r} already belongs to OAuth app {owner!r}")
            self._kids = {k: a for k, a in self._kids.items() if a != app.app_id}
            self._kids.update(dict.fromkeys(app.keys, app.app_id))
            self._revoked.difference_update(app.keys)
            self._apps[app.app_id] = app

    def revoke(self, kid: str) -> None:
        """Refuse exchanges signed with ``kid`` (tokens it got stay valid); KeyError if unknown."""
        with self._lock:
            if kid not in self._kids:
                raise KeyError(f"no OAuth app has a public key with kid {kid!r}")
            self._revoked.add(kid)

    def expire_tokens(self) -> int:
        """Make every token issued so far invalid; how many were still valid."""
        now = time.time()
        with self._lock:
            live = sum(1 for exp in self._tokens.values() if now < exp)
            self._tokens.clear()
            return live

    def fail_next(
        self, code: str, http_status: int | None = None, times: int = 1, message: str | None = None
    ) -> int:
        """Answer the next ``times`` exchanges with ``code`` before any check (nothing is spent); how many are pending."""
        if not isinstance(code, str) or not code:
            raise SpecError("error_code must be a non-empty string")
        if http_status is not None and (
            isinstance(http_status, bool) or not isinstance(http_status, int) or not 400 <= http_status <= 599
        ):
            raise SpecError(f"http_status must be an integer from 400 to 599, got {http_status!r}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise SpecError(f"times must be a positive integer, got {times!r}")
        if message is not None and not isinstance(message, str):
            raise SpecError("error_message must be a string")
        status = http_status or ERROR_STATUS.get(code, 500)
        with self._lock:
            self._faults.append([code, status, message or f"emulated {code}", times])
            return sum(f[3] for f in self._faults)

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is an issued token not yet expired."""
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and time.time() < expires

    def exchanges(self, outcome: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._exchanges if outcome is None or e["outcome"] == outcome]

    def exchange(self, authorization: str, host: str, body_text: str, account_id: str | None) -> Answer:
        """Answer one token request and record it."""
        now = time.time()
        try:
            body: Any = json.loads(body_text)
        except ValueError:
            body = None
        asked = body.get("duration_seconds") if isinstance(body, dict) else None
        record: dict[str, Any] = {
            "time": now,
            "app_id": None,
            "kid": None,
            "account_id": account_id,
            "duration_seconds": asked if isinstance(asked, int | float | str | bool) else None,
            "outcome": None,
            "http_status": None,
            "expires_in": None,
            "message": None,
        }
        try:
            answer = self._exchange(authorization, host, body, account_id, now, record)
        except OAuthError as err:
            record.update(outcome=err.code, http_status=err.http_status, message=err.message)
            answer = err.http_status, {"error_code": err.code, "error_message": err.message}
        with self._lock:
            self._exchanges.append(record)
        return answer

    def _exchange(
        self,
        authorization: str,
        host: str,
        body: Any,
        account_id: str | None,
        now: float,
        record: dict[str, Any],
    ) -> Answer:
        with self._lock:
            fault = self._faults[0] if self._faults else None
            if fault is not None:
                fault[3] -= 1
                if not fault[3]:
                    self._faults.pop(0)
        try:
            token = bearer_jwt(authorization)
            header = jwt_header(token)
        except OAuthError:
            if fault is None:
                raise
            token, header = "", {}  # the fault answers: the credential only names the app in the record
        kid = header.get("kid")
        with self._lock:
            app_id = self._kids.get(kid) if isinstance(kid, str) else None
            app = self._apps.get(app_id) if app_id else None
            revoked = kid in self._revoked
        record.update(kid=kid if isinstance(kid, str) else None, app_id=app_id)
        if fault is not None:
            raise OAuthError(fault[0], fault[2], fault[1])
        claims = verified_claims(token, header, app, revoked)
        assert app is not None
        jti = checked_jti(claims, host, now)
        with self._lock:
            self._jtis = {k: exp for k, exp in self._jtis.items() if exp > now}
            if (app.app_id, jti) in self._jtis:
                raise OAuthError(INVALID_REQUEST, f"jti {jti!r} was already used: each JWT can be used once")
            self._jtis[(app.app_id, jti)] = float(claims["exp"])
        duration = asked_duration(body)
        if account_id is not None and app.account_ids is not None and account_id not in app.account_ids:
            raise OAuthError(ACCESS_DENY, f"OAuth app {app.app_id!r} may not act for account {account_id!r}")
        lifetime = min(duration, app.token_lifetime or duration)
        expires_in = math.ceil(now + lifetime)
        access_token = "czs_" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens = {t: exp for t, exp in self._tokens.items() if now < exp}
            self._tokens[access_token] = expires_in
        record.update(outcome=ISSUED, http_status=200, expires_in=expires_in)
        return 200, {"access_token": access_token, "expires_in": expires_in, "token_type": "Bearer"}
