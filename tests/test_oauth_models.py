"""The pure side of Coze OAuth service apps: settings, the JWT, the exchange's answer, token renewal."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from airflow_provider_taskstatus.models.base import ApiError, ErrorKind, RawResponse, TaskStatusError
from airflow_provider_taskstatus.models.coze_oauth import (
    GRANT_TYPE,
    AccessToken,
    OAuthApp,
    OAuthError,
    audience,
    load_private_key,
    normalize_pem,
    oauth_app,
)
from airflow_provider_taskstatus.transport.policy import RetryPolicy
from airflow_provider_taskstatus.transport.throttle import AccountThrottle


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def app(rsa_key: rsa.RSAPrivateKey) -> OAuthApp:
    found = oauth_app("c", _pem(rsa_key), {"oauth_app_id": "115", "oauth_public_key_id": "kid-1"})
    assert found is not None
    return found


def test_the_jwt_is_what_coze_verifies(app: OAuthApp, rsa_key: rsa.RSAPrivateKey) -> None:
    now = time.time()
    first = app.jwt("https://api.coze.cn", now)
    second = app.jwt("https://api.coze.cn", now)
    header = jwt.get_unverified_header(first)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    claims = jwt.decode(first, rsa_key.public_key(), algorithms=["RS256"], audience="api.coze.cn")
    assert claims["iss"] == "115" and claims["iat"] == int(now) and claims["exp"] > claims["iat"]
    assert len(claims["jti"]) >= 32
    assert jwt.decode(second, options={"verify_signature": False})["jti"] != claims["jti"], "single-use"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://api.coze.cn", "api.coze.cn"),
        ("https://api.coze.cn:443", "api.coze.cn"),
        ("http://127.0.0.1:8765", "127.0.0.1:8765"),
        ("https://gw.example:8443/coze", "gw.example:8443"),
        ("http://[::1]:80", "[::1]"),
    ],
)
def test_audience_is_the_host_header(base_url: str, expected: str) -> None:
    assert audience(base_url) == expected


def test_exchange_request_and_account_variant(app: OAuthApp) -> None:
    request = app.exchange_request()
    assert request.path == "/api/permission/oauth2/token"
    assert json.loads(request.body or b"") == {"grant_type": GRANT_TYPE, "duration_seconds": 900}
    assert not request.leaves_task, "a lost exchange answer leaves no remote task"
    enterprise = OAuthApp("c", "115", "kid-1", app.private_key, 3600, "acc/1")
    assert enterprise.exchange_request().path == "/api/permission/oauth2/account/acc%2F1/token"
    assert enterprise.cache_key != app.cache_key, "another account, another token"
    assert app.private_key not in repr(app) and app.private_key not in app.cache_key


def _answer(status: int, body: dict[str, Any]) -> RawResponse:
    return RawResponse(status, {"x-tt-logid": "log-1"}, json.dumps(body).encode())


def test_expires_in_is_an_absolute_time(app: OAuthApp) -> None:
    token = app.interpret_exchange(
        _answer(200, {"access_token": "czs_1", "expires_in": 2_000_000_000}), 1000.0
    )
    assert token.expires_at == 2_000_000_000 and token.obtained_at == 1000.0
    assert "czs_1" not in repr(token)


@pytest.mark.parametrize(
    ("status", "body", "kind", "names"),
    [
        (
            401,
            {"error_code": "invalid_client", "error_message": "bad kid"},
            ErrorKind.AUTH,
            "oauth_public_key_id",
        ),
        (403, {"error_code": "access_deny", "error_message": "no"}, ErrorKind.AUTH, "oauth_account_id"),
        (400, {"error_code": "invalid_request", "error_message": "exp"}, ErrorKind.BAD_REQUEST, "clock"),
        (
            500,
            {"error_code": "internal_error", "error_message": "oops"},
            ErrorKind.TRANSIENT,
            "internal_error",
        ),
        (400, {"error": "invalid_client", "error_description": "x"}, ErrorKind.AUTH, "private key"),
        (401, {"code": 4100, "msg": "token invalid"}, ErrorKind.AUTH, "4100"),
        (200, {"error_code": "", "access_token": ""}, ErrorKind.TRANSIENT, "Coze OAuth token exchange"),
    ],
)
def test_exchange_errors_name_what_to_fix(
    app: OAuthApp, status: int, body: dict[str, Any], kind: ErrorKind, names: str
) -> None:
    with pytest.raises(OAuthError) as caught:
        app.interpret_exchange(_answer(status, body), time.time())
    assert caught.value.kind is kind
    assert names in str(caught.value) and "'c'" in str(caught.value)
    assert "logid: log-1" in str(caught.value)


def test_an_html_page_is_not_an_answer(app: OAuthApp) -> None:
    with pytest.raises(OAuthError) as caught:
        app.interpret_exchange(RawResponse(502, {}, b"<html>Bad Gateway</html>"), time.time())
    assert caught.value.kind is ErrorKind.TRANSIENT and "HTTP 502" in str(caught.value)


def test_a_token_is_renewed_shortly_before_it_expires() -> None:
    long = AccessToken("t", expires_at=10_000.0, obtained_at=10_000.0 - 900)
    assert long.usable(10_000.0 - 61) and not long.usable(10_000.0 - 59), "a minute early"
    short = AccessToken("t", expires_at=100.0, obtained_at=90.0)
    assert short.usable(98.9) and not short.usable(99.1), "a tenth of a short lifetime early"


def test_a_lost_exchange_is_not_resent_nor_uncertain() -> None:
    """Single-use like a start call, but what is lost is a JWT: the error stays transient."""
    request = OAuthApp("c", "1", "k", "pem").exchange_request()
    retrying = RetryPolicy(max_retries=3).start(AccountThrottle(), creates=request)
    lost = ApiError(ErrorKind.TRANSIENT, "No answer from … within 30 s")
    with pytest.raises(ApiError) as caught:
        retrying.backoff(lost)
    assert caught.value is lost and caught.value.kind is ErrorKind.TRANSIENT
    unsent = ApiError(ErrorKind.TRANSIENT, "refused", unsent=True)
    assert retrying.backoff(unsent) >= 0, "nothing reached the service: retried"


def test_pem_survives_a_password_box_and_json_escapes(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = _pem(rsa_key)
    one_line = pem.replace("\n", "")
    spaced = pem.replace("\n", " ")
    escaped = pem.replace("\n", "\\n")
    for pasted in (one_line, spaced, escaped, "  " + pem + "  "):
        assert normalize_pem(pasted) == pem
        assert isinstance(load_private_key("c", normalize_pem(pasted)), rsa.RSAPrivateKey)


def _settings(**extra: Any) -> dict[str, Any]:
    return {"oauth_app_id": "115", "oauth_public_key_id": "kid-1", **extra}


@pytest.mark.parametrize(
    ("secret", "extra", "names"),
    [
        ("PEM", {"oauth_app_id": "115"}, "oauth_public_key_id is missing"),
        ("pat_token", _settings(), "must hold the app's private key"),
        ("PEM", _settings(oauth_duration_seconds=0), "oauth_duration_seconds"),
        ("PEM", _settings(oauth_duration_seconds=86400), "1 to 86399"),
        ("PEM", _settings(oauth_duration_seconds="abc"), "oauth_duration_seconds"),
        ("PEM", _settings(oauth_app_id=["x"]), "oauth_app_id must be text"),
        ("PEM", {}, "oauth_app_id is not set"),
    ],
)
def test_settings_name_what_to_fix(
    rsa_key: rsa.RSAPrivateKey, secret: str, extra: dict[str, Any], names: str
) -> None:
    pem = _pem(rsa_key)
    with pytest.raises(TaskStatusError) as caught:
        oauth_app("c", pem if secret == "PEM" else secret, extra)
    assert names in str(caught.value)
    assert pem.splitlines()[1] not in str(caught.value), "never the key"


def test_a_token_connection_is_not_oauth() -> None:
    assert oauth_app("c", "pat_xxx", {}) is None
    found = oauth_app(
        "c", "-----BEGIN PRIVATE KEY-----x-----END PRIVATE KEY-----", _settings(oauth_duration_seconds="3600")
    )
    assert found is not None and found.duration == 3600


def test_keys_coze_cannot_use_are_refused_without_showing_them() -> None:
    ec_key = _pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(TaskStatusError, match="not an RSA key"):
        load_private_key("c", ec_key)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    encrypted = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    ).decode()
    with pytest.raises(TaskStatusError, match="encrypted"):
        load_private_key("c", encrypted)
    garbled = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    with pytest.raises(TaskStatusError, match="readable PEM private key") as caught:
        load_private_key("c", garbled)
    assert "bm90IGEga2V5" not in str(caught.value)
