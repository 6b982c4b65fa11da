"""The emulator's Coze OAuth JWT token exchange over real loopback HTTP (and HTTPS, and the CLI).

JWTs are signed here with PyJWT and RSA keys made at run time; the client is plain ``requests``.
The tokens the exchange gives are used on the seeded Coze status call and the start call.
"""

from __future__ import annotations

import json
import logging
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.emulator.oauth import OAuthApp
from tests.emulator_calls import control, copy_start

TOKEN_PATH = "/api/permission/oauth2/token"
GRANT = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}
STATUS_PATH = "/v1/entities/copy_tasks/demo-copy-workflow"
APP, KID, OTHER_KID = "1170000000001", "kid-main", "kid-second"


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    """Three RSA keys: the app's two and a stranger's."""
    return {k: rsa.generate_private_key(public_exponent=65537, key_size=2048) for k in (KID, OTHER_KID, "x")}


@pytest.fixture
def app(emulator: EmulatorServer, keys: dict[str, rsa.RSAPrivateKey]) -> EmulatorServer:
    """The session emulator, reset, with one OAuth app holding two keys."""
    emulator.add_oauth_app(APP, {KID: public_pem(keys[KID]), OTHER_KID: public_pem(keys[OTHER_KID]).decode()})
    return emulator


def host_of(server: EmulatorServer) -> str:
    return urlsplit(server.base_url).netloc


def make_jwt(
    server: EmulatorServer,
    key: Any,
    kid: str | None = KID,
    headers: dict[str, Any] | None = None,
    algorithm: str = "RS256",
    **claims: Any,
) -> str:
    """A JWT like cozepy's: ``iss``, ``aud`` (the emulator's host), ``iat``, ``exp``, a fresh ``jti``."""
    now = int(time.time())
    payload = {"iss": APP, "aud": host_of(server), "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    head = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=algorithm, headers={**head, **(headers or {})})


def exchange(
    server: EmulatorServer,
    token: str | None,
    body: Any = GRANT,
    path: str = TOKEN_PATH,
    verify: bool | str = True,
) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    data = body if isinstance(body, str) else json.dumps(body)
    return requests.post(server.base_url + path, data=data, headers=headers, timeout=5, verify=verify)


def status_call(server: EmulatorServer, access_token: str) -> requests.Response:
    auth = {"Authorization": f"Bearer {access_token}"}
    return requests.get(server.base_url + STATUS_PATH, headers=auth, timeout=5)


def issued(server: EmulatorServer, keys: dict[str, rsa.RSAPrivateKey], **body: Any) -> dict[str, Any]:
    r = exchange(server, make_jwt(server, keys[KID]), {**GRANT, **body})
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


# --- success ----------------------------------------------------------------------------------


def test_exchange_gives_a_token_the_coze_calls_accept(app: EmulatorServer, keys: Any) -> None:
    before = time.time()
    r = exchange(app, make_jwt(app, keys[KID]))
    assert r.status_code == 200
    assert r.headers["x-tt-logid"]
    answer = r.json()
    assert set(answer) == {"access_token", "expires_in", "token_type"}
    assert answer["token_type"] == "Bearer"
    assert answer["access_token"].startswith("czs_")
    expires_in = answer["expires_in"]
    assert isinstance(expires_in, int)
    assert before + 900 <= expires_in <= time.time() + 901, "absolute Unix time, not a duration"

    polled = status_call(app, answer["access_token"])
    assert polled.status_code == 200
    assert polled.json()["data"]["task_status"] == "successful"
    started = copy_start(
        app,
        {"entity_id": "wf-1", "entity_type": "workflow"},
        {"Authorization": f"Bearer {answer['access_token']}"},
    )
    assert started.status_code == 200 and started.json()["code"] == 0
    assert status_call(app, "czs_never_issued").json()["code"] == 4100

    [record] = app.oauth_exchanges()
    assert record["outcome"] == "issued"
    assert (record["app_id"], record["kid"], record["account_id"]) == (APP, KID, None)
    assert (record["http_status"], record["expires_in"], record["duration_seconds"]) == (
        200,
        expires_in,
        None,
    )


def test_duration_is_honoured_and_capped_by_the_apps_lifetime(app: EmulatorServer, keys: Any) -> None:
    now = time.time()
    assert now + 60 <= issued(app, keys, duration_seconds=60)["expires_in"] <= time.time() + 61
    assert issued(app, keys, duration_seconds=86399)["expires_in"] >= now + 86399
    app.add_oauth_app(APP, {KID: public_pem(keys[KID])}, token_lifetime=2.5)
    now = time.time()
    assert now + 2.5 <= issued(app, keys, duration_seconds=900)["expires_in"] <= time.time() + 3.5
    assert [e["duration_seconds"] for e in app.oauth_exchanges()] == [60, 86399, 900]


def test_the_key_of_the_jwt_picks_the_public_key(app: EmulatorServer, keys: Any) -> None:
    r = exchange(app, make_jwt(app, keys[OTHER_KID], kid=OTHER_KID))
    assert r.status_code == 200
    assert app.oauth_exchanges()[0]["kid"] == OTHER_KID


def test_iat_slightly_ahead_is_clock_skew(app: EmulatorServer, keys: Any) -> None:
    r = exchange(app, make_jwt(app, keys[KID], iat=int(time.time()) + 30))
    assert r.status_code == 200


def test_aud_may_be_a_list_holding_the_host(app: EmulatorServer, keys: Any) -> None:
    r = exchange(app, make_jwt(app, keys[KID], aud=["api.coze.cn", host_of(app)]))
    assert r.status_code == 200


# --- errors ----------------------------------------------------------------------------------

#: A bad exchange: (JWT maker or a raw Authorization credential, body) -> (HTTP status, error_code).
Maker = Callable[[EmulatorServer, dict[str, Any]], "str | None"]
BAD_EXCHANGES: dict[str, tuple[Maker, Any, int, str]] = {
    "no-authorization": (lambda s, k: None, GRANT, 401, "invalid_client"),
    "not-a-jwt": (lambda s, k: "not.a.jwt", GRANT, 401, "invalid_client"),
    "hs256": (
        lambda s, k: make_jwt(s, "a-shared-secret-of-32-bytes-long!!", algorithm="HS256"),
        GRANT,
        401,
        "invalid_client",
    ),
    "typ-not-jwt": (lambda s, k: make_jwt(s, k[KID], headers={"typ": "JOSE"}), GRANT, 401, "invalid_client"),
    "no-kid": (lambda s, k: make_jwt(s, k[KID], kid=None), GRANT, 401, "invalid_client"),
    "unknown-kid": (lambda s, k: make_jwt(s, k["x"], kid="x"), GRANT, 401, "invalid_client"),
    "bad-signature": (lambda s, k: make_jwt(s, k["x"]), GRANT, 401, "invalid_client"),
    "wrong-iss": (lambda s, k: make_jwt(s, k[KID], iss="another-app"), GRANT, 401, "invalid_client"),
    "wrong-aud": (lambda s, k: make_jwt(s, k[KID], aud="api.coze.cn"), GRANT, 400, "invalid_request"),
    "expired": (lambda s, k: make_jwt(s, k[KID], exp=int(time.time()) - 5), GRANT, 400, "invalid_request"),
    "no-exp": (lambda s, k: make_jwt(s, k[KID], exp=None), GRANT, 400, "invalid_request"),
    "iat-ahead": (
        lambda s, k: make_jwt(s, k[KID], iat=int(time.time()) + 120),
        GRANT,
        400,
        "invalid_request",
    ),
    "no-iat": (lambda s, k: make_jwt(s, k[KID], iat=None), GRANT, 400, "invalid_request"),
    "no-jti": (lambda s, k: make_jwt(s, k[KID], jti=None), GRANT, 400, "invalid_request"),
    "body-not-json": (lambda s, k: make_jwt(s, k[KID]), "grant_type=jwt", 400, "invalid_request"),
    "body-a-list": (lambda s, k: make_jwt(s, k[KID]), [GRANT], 400, "invalid_request"),
    "no-grant-type": (lambda s, k: make_jwt(s, k[KID]), {}, 400, "unsupported_grant_type"),
    "other-grant": (
        lambda s, k: make_jwt(s, k[KID]),
        {"grant_type": "client_credentials"},
        400,
        "unsupported_grant_type",
    ),
    "duration-0": (
        lambda s, k: make_jwt(s, k[KID]),
        {**GRANT, "duration_seconds": 0},
        400,
        "invalid_request",
    ),
    "duration-86400": (
        lambda s, k: make_jwt(s, k[KID]),
        {**GRANT, "duration_seconds": 86400},
        400,
        "invalid_request",
    ),
    "duration-text": (
        lambda s, k: make_jwt(s, k[KID]),
        {**GRANT, "duration_seconds": "900"},
        400,
        "invalid_request",
    ),
    "duration-float": (
        lambda s, k: make_jwt(s, k[KID]),
        {**GRANT, "duration_seconds": 9.5},
        400,
        "invalid_request",
    ),
}


@pytest.mark.parametrize("case", list(BAD_EXCHANGES))
def test_bad_exchange_is_refused_with_its_code(app: EmulatorServer, keys: Any, case: str) -> None:
    make, body, status, code = BAD_EXCHANGES[case]
    r = exchange(app, make(app, keys), body)
    assert r.status_code == status, r.text
    answer = r.json()
    assert set(answer) == {"error_code", "error_message"}
    assert answer["error_code"] == code
    assert answer["error_message"]
    assert r.headers["x-tt-logid"]
    [record] = app.oauth_exchanges()
    assert (record["outcome"], record["http_status"], record["expires_in"]) == (code, status, None)
    assert app.requests(call="oauth")[0]["auth_valid"] is False


def test_a_basic_credential_is_not_a_bearer_jwt(app: EmulatorServer) -> None:
    r = requests.post(
        app.base_url + TOKEN_PATH, json=GRANT, headers={"Authorization": "Basic YTpi"}, timeout=5
    )
    assert (r.status_code, r.json()["error_code"]) == (401, "invalid_client")


def test_wrong_audience_names_the_expected_one(app: EmulatorServer, keys: Any) -> None:
    r = exchange(app, make_jwt(app, keys[KID], aud="api.coze.cn"))
    assert host_of(app) in r.json()["error_message"]


def test_each_jwt_is_used_once(app: EmulatorServer, keys: Any) -> None:
    token = make_jwt(app, keys[KID], jti="jti-once")
    assert exchange(app, token).status_code == 200
    again = exchange(app, token)
    assert again.status_code == 400
    assert again.json()["error_code"] == "invalid_request"
    assert "jti-once" in again.json()["error_message"] and "already used" in again.json()["error_message"]
    # A verified JWT is spent even when the body is refused: a retry must mint a new one.
    spent = make_jwt(app, keys[KID])
    assert exchange(app, spent, {}).json()["error_code"] == "unsupported_grant_type"
    assert exchange(app, spent).json()["error_code"] == "invalid_request"
    assert app.oauth_exchange_count("issued") == 1
    assert app.oauth_exchange_count("invalid_request") == 2


def test_a_token_stops_working_at_its_expires_in(app: EmulatorServer, keys: Any) -> None:
    app.add_oauth_app(APP, {KID: public_pem(keys[KID])}, token_lifetime=2)
    answer = issued(app, keys)
    assert status_call(app, answer["access_token"]).status_code == 200
    time.sleep(max(0.0, answer["expires_in"] - time.time()) + 0.05)
    expired = status_call(app, answer["access_token"])
    assert expired.status_code == 401
    assert expired.json()["code"] == 4100
    assert issued(app, keys)["access_token"] != answer["access_token"], "a new exchange gives a new token"


def test_a_revoked_key_exchanges_nothing_but_its_tokens_keep_working(app: EmulatorServer, keys: Any) -> None:
    token = issued(app, keys)["access_token"]
    app.revoke_oauth_key(KID)
    r = exchange(app, make_jwt(app, keys[KID]))
    assert (r.status_code, r.json()["error_code"]) == (401, "invalid_client")
    assert "revoked" in r.json()["error_message"]
    assert status_call(app, token).status_code == 200
    assert exchange(app, make_jwt(app, keys[OTHER_KID], kid=OTHER_KID)).status_code == 200
    with pytest.raises(KeyError):
        app.revoke_oauth_key("no-such-kid")
    app.add_oauth_app(APP, {KID: public_pem(keys[KID])})  # registering the key again revives it
    assert exchange(app, make_jwt(app, keys[KID])).status_code == 200


def test_expire_tokens_ends_every_token_issued_so_far(app: EmulatorServer, keys: Any) -> None:
    tokens = [issued(app, keys)["access_token"] for _ in range(2)]
    app.expire_oauth_tokens()
    assert [status_call(app, t).json()["code"] for t in tokens] == [4100, 4100]
    assert status_call(app, issued(app, keys)["access_token"]).status_code == 200


def account_path(account_id: str) -> str:
    return f"/api/permission/oauth2/account/{account_id}/token"


def test_account_variant_without_declared_accounts_takes_any(app: EmulatorServer, keys: Any) -> None:
    r = exchange(app, make_jwt(app, keys[KID]), path=account_path("acc-9"))
    assert r.status_code == 200
    assert status_call(app, r.json()["access_token"]).status_code == 200
    assert app.oauth_exchanges()[0]["account_id"] == "acc-9"


def test_account_variant_with_declared_accounts(app: EmulatorServer, keys: Any) -> None:
    app.add_oauth_app(APP, {KID: public_pem(keys[KID])}, account_ids=["acc-1", "acc-2"])
    assert exchange(app, make_jwt(app, keys[KID]), path=account_path("acc-2")).status_code == 200
    denied = exchange(app, make_jwt(app, keys[KID]), path=account_path("acc-3"))
    assert (denied.status_code, denied.json()["error_code"]) == (403, "access_deny")
    assert exchange(app, make_jwt(app, keys[KID])).status_code == 200, "the plain endpoint names no account"
    assert [(e["account_id"], e["outcome"]) for e in app.oauth_exchanges()] == [
        ("acc-2", "issued"),
        ("acc-3", "access_deny"),
        (None, "issued"),
    ]


def test_injected_failures_answer_first_and_spend_nothing(app: EmulatorServer, keys: Any) -> None:
    app.fail_next_oauth("internal_error", times=2)
    token = make_jwt(app, keys[KID])
    first, second = exchange(app, token), exchange(app, token)
    for r in (first, second):
        assert (r.status_code, r.json()["error_code"]) == (500, "internal_error")
    assert exchange(app, token).status_code == 200, "the faults spent no jti"
    app.fail_next_oauth("invalid_client", http_status=401, message="key pair disabled")
    r = exchange(app, make_jwt(app, keys[KID]))
    assert (r.status_code, r.json()) == (
        401,
        {"error_code": "invalid_client", "error_message": "key pair disabled"},
    )
    assert [e["outcome"] for e in app.oauth_exchanges()] == [
        "internal_error",
        "internal_error",
        "issued",
        "invalid_client",
    ]
    assert app.oauth_exchanges()[0]["kid"] == KID
    with pytest.raises(ValueError, match="times"):
        app.fail_next_oauth("internal_error", times=0)


def test_exchanges_are_counted_apart_from_start_and_status_calls(app: EmulatorServer, keys: Any) -> None:
    token = issued(app, keys)["access_token"]
    exchange(app, None)
    status_call(app, token)
    assert app.oauth_exchange_count() == 2
    assert (app.oauth_exchange_count("issued"), app.oauth_exchange_count("invalid_client")) == (1, 1)
    assert [r["raw_path"] for r in app.requests(call="oauth")] == [TOKEN_PATH, TOKEN_PATH]
    assert len(app.requests(call="status")) == 1
    assert app.stats()["by_call"] == {"oauth": 2, "status": 1}


def test_no_jwt_or_token_in_the_logs(
    app: EmulatorServer, keys: Any, caplog: pytest.LogCaptureFixture
) -> None:
    jwts = [make_jwt(app, keys[KID]) for _ in range(2)]
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        token = exchange(app, jwts[0]).json()["access_token"]
        exchange(app, jwts[0])  # reused: refused
        exchange(app, jwts[1], {"grant_type": "nope"})
        status_call(app, token)
        deadline = time.time() + 5
        while len([r for r in caplog.records if r.name == "aiohttp.access"]) < 4 and time.time() < deadline:
            time.sleep(0.02)
    access_log = "\n".join(r.getMessage() for r in caplog.records if r.name == "aiohttp.access")
    assert TOKEN_PATH in access_log
    records = json.dumps(
        [app.requests(), app.oauth_exchanges(), control(app, "GET", "oauth/exchanges").json()]
    )
    for secret in [*jwts, token, *(j.split(".")[2] for j in jwts)]:
        assert secret not in access_log
        assert secret not in records
        assert secret not in caplog.text


def test_reset_forgets_apps_tokens_and_exchanges(app: EmulatorServer, keys: Any) -> None:
    token = issued(app, keys)["access_token"]
    app.reset()
    assert app.oauth_exchanges() == []
    assert status_call(app, token).status_code == 401
    r = exchange(app, make_jwt(app, keys[KID]))
    assert (r.status_code, r.json()["error_code"]) == (401, "invalid_client")


def test_constructor_apps_survive_reset(keys: Any) -> None:
    apps = [OAuthApp(APP, {KID: public_pem(keys[KID])}, token_lifetime=30)]
    with EmulatorServer(access_log=False, oauth_apps=apps) as server:
        server.add_oauth_app("temporary", {"t": public_pem(keys["x"])})
        server.reset()
        assert exchange(server, make_jwt(server, keys[KID])).status_code == 200
        assert exchange(server, make_jwt(server, keys["x"], kid="t", iss="temporary")).status_code == 401


def test_add_oauth_app_refuses_bad_keys(emulator: EmulatorServer, keys: Any) -> None:
    with pytest.raises(ValueError, match="not a PEM public key"):
        emulator.add_oauth_app(APP, {KID: "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"})
    private = keys[KID].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="not a PEM public key"):
        emulator.add_oauth_app(APP, {KID: private})
    emulator.add_oauth_app(APP, {KID: public_pem(keys[KID])})
    with pytest.raises(ValueError, match="already belongs"):
        emulator.add_oauth_app("other-app", {KID: public_pem(keys[KID])})
    with pytest.raises(ValueError, match="token_lifetime"):
        emulator.add_oauth_app(APP, {KID: public_pem(keys[KID])}, token_lifetime=0)


# --- control endpoints -------------------------------------------------------------------------


def test_control_endpoints(emulator: EmulatorServer, keys: Any) -> None:
    pem = public_pem(keys[KID]).decode()
    body = {"app_id": APP, "public_keys": {KID: pem}, "token_lifetime": 60, "account_ids": ["acc-1"]}
    created = control(emulator, "POST", "oauth/apps", json=body)
    assert (created.status_code, created.json()) == (201, {"app_id": APP, "kids": [KID]})
    bad = control(emulator, "POST", "oauth/apps", json={**body, "public_keys": {KID: "nope"}})
    assert bad.status_code == 400 and "PEM" in bad.json()["error"]
    typo = control(emulator, "POST", "oauth/apps", json={**body, "token_lifetimes": 5})
    assert typo.status_code == 400 and "token_lifetime" in typo.json()["known_keys"]

    answer = issued(emulator, keys)
    assert answer["expires_in"] <= time.time() + 61
    assert control(emulator, "POST", "oauth/tokens/expire").json() == {"expired": 1}
    assert status_call(emulator, answer["access_token"]).status_code == 401

    faults = control(emulator, "POST", "oauth/faults", json={"error_code": "internal_error", "times": 2})
    assert (faults.status_code, faults.json()) == (201, {"pending": 2})
    assert control(emulator, "POST", "oauth/faults", json={"error_code": ""}).status_code == 400
    assert [exchange(emulator, make_jwt(emulator, keys[KID])).status_code for _ in range(3)] == [
        500,
        500,
        200,
    ]

    assert control(emulator, "POST", "oauth/keys/revoke", json={"kid": KID}).json() == {
        "kid": KID,
        "revoked": True,
    }
    assert control(emulator, "POST", "oauth/keys/revoke", json={"kid": "nope"}).status_code == 404
    assert exchange(emulator, make_jwt(emulator, keys[KID])).status_code == 401

    log = control(emulator, "GET", "oauth/exchanges").json()
    assert [e["outcome"] for e in log] == [
        "issued",
        "internal_error",
        "internal_error",
        "issued",
        "invalid_client",
    ]
    assert len(control(emulator, "GET", "oauth/exchanges", params={"outcome": "issued"}).json()) == 2
    assert control(emulator, "GET", "oauth/exchanges", params={"kind": "x"}).status_code == 400


# --- TLS and the CLI ---------------------------------------------------------------------------


def test_exchange_over_tls(tmp_path: Path, keys: Any) -> None:
    from benchmarks.tls import make_self_signed

    files = make_self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    with EmulatorServer(ssl_context=context, access_log=False) as server:
        server.add_oauth_app(APP, {KID: public_pem(keys[KID])})
        assert server.base_url.startswith("https://")
        r = exchange(server, make_jwt(server, keys[KID]), verify=str(files.cert))
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        polled = requests.get(server.base_url + STATUS_PATH, headers=auth, verify=str(files.cert), timeout=5)
        assert polled.json()["data"]["task_status"] == "successful"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "airflow_provider_taskstatus.emulator", "--port", "0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def test_cli_oauth_app_with_a_missing_or_bad_key_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    proc = run_cli("--oauth-app", f"{APP}:{KID}:{missing}")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"taskstatus-emulator: error: --oauth-app {missing}: no such file\n"
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    proc = run_cli("--oauth-app", f"{APP}:{KID}:{bad}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(
        f"taskstatus-emulator: error: cannot load --oauth-app {bad} (a PEM RSA public key?)"
    )
    assert proc.stderr.count("\n") == 1
    proc = run_cli("--oauth-app", f"{APP}-{KID}")
    assert proc.returncode == 2 and "APP_ID:KID:PUBLIC_KEY_PEM_FILE" in proc.stderr


@pytest.fixture
def cli_server(tmp_path: Path, keys: Any) -> Iterator[str]:
    """A ``taskstatus-emulator`` process with one OAuth app (2 s tokens); its base URL."""
    pem = tmp_path / "app.pem"
    pem.write_bytes(public_pem(keys[KID]))
    cmd = [sys.executable, "-m", "airflow_provider_taskstatus.emulator", "--port", "0", "--quiet"]
    cmd += ["--oauth-app", f"{APP}:{KID}:{pem}", "--oauth-token-lifetime", "2"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert f"oauth apps: {APP} ({KID})" in line
            yield line.split()[2]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_cli_serves_the_exchange(cli_server: str, keys: Any) -> None:
    class Remote:  # what make_jwt and exchange need of a server
        base_url = cli_server

    server: Any = Remote()
    requests.post(cli_server + "/_emulator/reset", timeout=5).raise_for_status()  # the app survives it
    before = time.time()
    r = exchange(server, make_jwt(server, keys[KID]), {**GRANT, "duration_seconds": 600})
    assert r.status_code == 200, r.text
    assert before + 2 <= r.json()["expires_in"] <= time.time() + 3
    assert status_call(server, r.json()["access_token"]).status_code == 200
    exchanges = requests.get(cli_server + "/_emulator/oauth/exchanges", timeout=5).json()
    assert [(e["app_id"], e["outcome"], e["duration_seconds"]) for e in exchanges] == [(APP, "issued", 600)]
