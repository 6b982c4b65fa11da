"""Coze OAuth service apps (JWT) end to end, over real HTTP against the emulator.

A connection names the app (``oauth_app_id``, ``oauth_public_key_id``) and holds its RSA private
key in the password field; the hook signs a JWT, exchanges it for an access token, and shares that
token among every call of the process. Counted at the emulator (``oauth_exchange_count``), the
JWT flow must cost one exchange per token lifetime, whatever the mode or the number of callers.
Many triggers in one loop: ``tests/test_oauth_scale.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.hooks.probe import PROBE_TASK_ID
from airflow_provider_taskstatus.models.base import ErrorKind, State, TaskStatusError
from airflow_provider_taskstatus.models.coze_oauth import OAuthError
from airflow_provider_taskstatus.transport.tokens import TOKENS
from tests.connection_clients import WORKS, assert_user_facing
from tests.oauth_apps import (
    APP_ID,
    CONN_ID,
    KID,
    Keys,
    exchange_count,
    in_progress_for,
    make_keys,
    register_app,
    set_connection,
)
from tests.sensor_runner import MODES, QuickCozeSensor, run

SENSOR = {"poke_interval": 0.05, "timeout": 20, "request_timeout": 5, "max_retries": 0, "retry_backoff": 0.05}


def sensor(task_id: str, conn_id: str = CONN_ID, **kwargs: Any) -> QuickCozeSensor:
    return QuickCozeSensor(task_id="wait", copy_task_id=task_id, coze_conn_id=conn_id, **{**SENSOR, **kwargs})


@pytest.fixture(scope="module")
def keys() -> Keys:
    return make_keys()


@pytest.fixture
def app(emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """The emulator with app-1 (kid-1, tokens of the 900 s asked for), and connection coze_oauth."""
    register_app(emulator, keys)
    set_connection(monkeypatch, emulator.base_url, keys.private)
    return emulator


# -- the JWT flow, both modes -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_sensor_waits_on_one_exchange(app: EmulatorServer, mode: str) -> None:
    app.set_task(
        "coze", "copy-1", [{"task_status": "in_progress", "repeat": 4}, {"task_status": "successful"}]
    )
    result = run(sensor("copy-1"), mode)
    assert result["task_status"] == "successful"
    assert result["task_id"] == "copy-1"
    polls = app.requests(task_id="copy-1", call="status")
    assert len(polls) == 5
    assert all(r["auth_valid"] for r in polls), "every poll carried the access token"
    assert app.oauth_exchange_count() == 1, app.oauth_exchanges()
    [exchange] = app.oauth_exchanges("issued")
    assert (exchange["app_id"], exchange["kid"], exchange["account_id"]) == (APP_ID, KID, None)
    assert exchange["duration_seconds"] == 900
    assert exchange_count() == 1


async def test_sync_async_and_start_calls_share_one_token(app: EmulatorServer) -> None:
    hook = CozeHook(CONN_ID)
    started = hook.start_copy("wf-1", "workflow")
    assert started.task_id
    # The default lifecycle: in progress twice, then successful.
    assert hook.get_task_status(started.task_id).state is State.RUNNING
    assert (await hook.aget_task_status(started.task_id)).state is State.RUNNING
    other = CozeHook(CONN_ID)  # another hook of the account: the process's token, no exchange
    assert (await other.aget_task_status(started.task_id)).state is State.SUCCEEDED
    again = await other.astart_copy("wf-2", "workflow", "ws-2")
    assert again.task_id and again.task_id != started.task_id
    assert app.start_count("coze") == 2
    assert app.oauth_exchange_count() == 1, app.oauth_exchanges()
    assert all(r["auth_valid"] for r in app.requests(api="coze") if r["call"] != "oauth")


async def test_concurrent_first_calls_make_one_exchange(app: EmulatorServer) -> None:
    app.set_task("coze", "copy-1", [{"task_status": "in_progress"}])
    hooks = [CozeHook(CONN_ID) for _ in range(20)]
    statuses = await asyncio.gather(*(h.aget_task_status("copy-1") for h in hooks))
    assert {s.state for s in statuses} == {State.RUNNING}
    assert app.oauth_exchange_count() == 1


def test_enterprise_account_uses_its_token_path(
    emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.add_oauth_app(APP_ID, {KID: keys.public}, account_ids=["acct-7"])
    set_connection(monkeypatch, emulator.base_url, keys.private, oauth_account_id="acct-7")
    set_connection(
        monkeypatch, emulator.base_url, keys.private, "coze_oauth_other", oauth_account_id="acct-8"
    )
    assert CozeHook(CONN_ID).get_task_status("demo-copy-success").state is not State.FAILED
    [exchange] = emulator.oauth_exchanges()
    assert (exchange["outcome"], exchange["account_id"]) == ("issued", "acct-7")
    with pytest.raises(OAuthError) as denied:
        CozeHook("coze_oauth_other").get_task_status("demo-copy-success")
    assert denied.value.kind is ErrorKind.AUTH
    assert "access_deny" in str(denied.value) and "oauth_account_id" in str(denied.value)
    assert emulator.oauth_exchange_count("access_deny") == 1


# -- renewal and failures, sync path -----------------------------------------------------------------


def test_poke_sensor_renews_an_expired_token_with_one_exchange(app: EmulatorServer) -> None:
    """The API answers 4100 to the token mid-wait: one exchange, the poll resent, no failed poll."""
    app.set_task(
        "coze", "copy-1", [{"task_status": "in_progress", "repeat": 3}, {"task_status": "successful"}]
    )
    pokes = []

    class ExpiringSensor(QuickCozeSensor):
        def poke(self, context: Any) -> Any:
            pokes.append(1)
            if len(pokes) == 3:
                app.expire_oauth_tokens()
            return super().poke(context)

    # One failed poll would end the wait: the 4100 must not count as one.
    wait = ExpiringSensor(
        task_id="wait",
        copy_task_id="copy-1",
        coze_conn_id=CONN_ID,
        **{**SENSOR, "max_consecutive_failures": 1},
    )
    assert run(wait, "poke")["task_status"] == "successful"
    assert app.oauth_exchange_count() == app.oauth_exchange_count("issued") == 2
    polls = app.requests(task_id="copy-1")
    assert [r["auth_valid"] for r in polls] == [True, True, False, True, True], "refused once, resent at once"
    assert len(pokes) == 4


async def test_hook_calls_renew_an_expired_token_with_one_exchange(app: EmulatorServer) -> None:
    hook = CozeHook(CONN_ID)
    hook.get_task_status("demo-copy-success")
    app.expire_oauth_tokens()
    assert hook.get_task_status("demo-copy-success").request_id
    app.expire_oauth_tokens()
    assert (await hook.aget_task_status("demo-copy-success")).request_id
    app.expire_oauth_tokens()
    assert hook.start_copy("wf-1", "workflow").task_id
    assert app.oauth_exchange_count("issued") == 4 == app.oauth_exchange_count()
    assert app.start_count("coze") == 1, "the refused start created nothing and was resent once"
    refused = [r["call"] for r in app.requests(api="coze") if r["call"] != "oauth" and not r["auth_valid"]]
    assert refused == ["status", "status", "start"]


def test_a_token_refused_twice_fails_after_one_renewal(app: EmulatorServer) -> None:
    """A 4100 that a new token does not cure (a permission gone): one renewal, then the error."""
    CozeHook(CONN_ID).get_task_status("demo-copy-success")
    app.inject_faults("coze", [{"code": 4100, "msg": "token no longer valid", "repeat": 5}])
    with pytest.raises(TaskStatusError) as raised:
        CozeHook(CONN_ID).get_task_status("demo-copy-success")
    assert "4100" in str(raised.value)
    assert app.oauth_exchange_count("issued") == 2
    assert len(app.requests(task_id="demo-copy-success")) == 3


REFUSED = {
    "revoked key": ({}, "kid-1", "oauth_public_key_id"),
    "wrong app id": ({"oauth_app_id": "app-2"}, None, "oauth_app_id"),
    "unknown key id": ({"oauth_public_key_id": "kid-9"}, None, "oauth_public_key_id"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", [*REFUSED, "another key"])
def test_refused_key_fails_at_once_after_one_exchange(
    emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch, name: str, mode: str
) -> None:
    register_app(emulator, keys)
    extra, revoke, names = REFUSED.get(name, ({}, None, "oauth_public_key_id"))
    set_connection(
        monkeypatch, emulator.base_url, keys.stranger if name == "another key" else keys.private, **extra
    )
    if revoke:
        emulator.revoke_oauth_key(revoke)
    emulator.set_task("coze", "copy-1", [{"task_status": "in_progress"}])
    with pytest.raises(TaskStatusError) as raised:
        run(sensor("copy-1", max_retries=2, max_consecutive_failures=5), mode)
    assert type(raised.value) is TaskStatusError, (
        "the outcome table's fatal row: no soft_fail, normal retries"
    )
    message = str(raised.value)
    assert "invalid_client" in message and names in message, message
    assert "the private key in its password field" in message
    assert "connection 'coze_oauth'" in message
    assert emulator.oauth_exchange_count() == emulator.oauth_exchange_count("invalid_client") == 1
    assert emulator.requests(call="status") == []


def test_a_refusal_is_remembered_for_a_while_but_not_by_test_connection(
    app: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other waits of the account fail with the same refusal without a JWT of their own, for
    ``REFUSAL_MEMORY`` seconds (a minute; 0.5 s here); then the service is asked again. Test
    Connection always asks."""
    from airflow_provider_taskstatus.transport import tokens

    monkeypatch.setattr(tokens, "REFUSAL_MEMORY", 0.5)
    app.revoke_oauth_key(KID)
    app.set_task("coze", "copy-1", [{"task_status": "successful"}])
    for _ in range(3):
        with pytest.raises(TaskStatusError, match="invalid_client"):
            CozeHook(CONN_ID).get_task_status("copy-1")
    assert app.oauth_exchange_count() == 1, "remembered: no second JWT"
    works, message = CozeHook(CONN_ID).test_connection()
    assert not works and message.startswith("Step 2 of 3 (token exchange) failed"), message
    assert app.oauth_exchange_count() == 2, "Test Connection asks the service itself"
    time.sleep(0.6)
    register_app(app, keys)  # the key pair is active again
    assert CozeHook(CONN_ID).get_task_status("copy-1").remote_status == "successful"
    assert [e["outcome"] for e in app.oauth_exchanges()] == ["invalid_client"] * 2 + ["issued"]


@pytest.mark.parametrize("budget", [1, 2])
def test_transient_exchange_failure_is_a_failed_poll(app: EmulatorServer, budget: int) -> None:
    app.set_task("coze", "copy-1", [{"task_status": "in_progress"}, {"task_status": "successful"}])
    app.fail_next_oauth("internal_error")
    wait = sensor("copy-1", max_consecutive_failures=budget)
    if budget == 1:
        with pytest.raises(TaskStatusError) as raised:
            run(wait, "poke")
        assert "internal_error" in str(raised.value) and "Coze OAuth token exchange" in str(raised.value)
        assert app.oauth_exchange_count() == 1
        return
    assert run(wait, "poke")["task_status"] == "successful"
    assert [e["outcome"] for e in app.oauth_exchanges()] == ["internal_error", "issued"]
    assert len(app.requests(task_id="copy-1")) == 2


# -- bad settings: clear errors before any request ------------------------------------------------


def _no_key(_: Keys) -> str:
    return "pat_not_a_key"


BAD_SETTINGS: dict[str, tuple[Any, dict[str, Any], str]] = {
    "app id without key id": (
        lambda k: k.private,
        {"oauth_public_key_id": None},
        "extra oauth_public_key_id is missing",
    ),
    "app id with a token": (
        _no_key,
        {},
        "names OAuth app app-1, so its password field must hold the app's private key",
    ),
    "PEM without app id": (
        lambda k: k.private,
        {"oauth_app_id": None, "oauth_public_key_id": None},
        "holds a PEM key, but oauth_app_id is not set",
    ),
    "encrypted key": (lambda k: k.encrypted, {}, "the private key in the password field is encrypted"),
    "EC key": (lambda k: k.ec, {}, "the private key is not an RSA key"),
    "truncated key": (
        lambda k: k.private[:200] + "\n-----END PRIVATE KEY-----\n",
        {},
        "does not hold a readable PEM private key",
    ),
    "duration 0": (lambda k: k.private, {"oauth_duration_seconds": 0}, "oauth_duration_seconds must be"),
    "duration 86400": (lambda k: k.private, {"oauth_duration_seconds": 86400}, "from 1 to 86399"),
    "duration abc": (lambda k: k.private, {"oauth_duration_seconds": "abc"}, "got 'abc'"),
    "app id not text": (lambda k: k.private, {"oauth_app_id": ["a"]}, "extra oauth_app_id must be text"),
}


async def _call(hook: CozeHook, how: str) -> object:
    if how == "sync":
        return hook.get_task_status("demo-copy-success")
    if how == "async":
        return await hook.aget_task_status("demo-copy-success")
    return hook.start_copy("wf-1", "workflow")


@pytest.mark.parametrize("name", list(BAD_SETTINGS))
async def test_bad_settings_fail_before_any_request(
    emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    password, extra, says = BAD_SETTINGS[name]
    register_app(emulator, keys)
    secret = password(keys)
    set_connection(monkeypatch, emulator.base_url, secret, **extra)
    for call in ("sync", "async", "start"):
        with pytest.raises(TaskStatusError) as raised:
            await _call(CozeHook(CONN_ID), call)
        message = str(raised.value)
        assert says in message, message
        assert "'coze_oauth'" in message, "the message names the connection"
        assert not any(line in message for line in keys.secrets), "the key is never in a message"
    assert emulator.requests() == [], "nothing was sent"
    ok, message = CozeHook(CONN_ID).test_connection()
    assert ok is False and says in message, message
    assert emulator.requests() == []


@pytest.mark.parametrize("mode", MODES)
def test_sensor_with_bad_settings_fails_at_once(
    emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    register_app(emulator, keys)
    set_connection(monkeypatch, emulator.base_url, keys.encrypted)
    emulator.set_task("coze", "copy-1", [{"task_status": "in_progress"}])
    with pytest.raises(TaskStatusError) as raised:
        run(sensor("copy-1"), mode)
    assert "is encrypted" in str(raised.value)
    assert emulator.requests() == []


@pytest.mark.parametrize(
    "mangle",
    [
        lambda pem: pem.replace("\n", ""),  # a browser's password box drops the line breaks
        lambda pem: pem.replace("\n", " "),
        lambda pem: pem.replace("\n", "\\n"),  # JSON or a .env file kept "\n" as two characters
        lambda pem: "  " + pem.replace("\n", "\r\n") + "\n\n",
    ],
    ids=["one line", "spaces", "literal \\n", "CRLF and blanks"],
)
async def test_pasted_key_still_works(
    emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch, mangle: Any
) -> None:
    register_app(emulator, keys)
    set_connection(monkeypatch, emulator.base_url, mangle(keys.private))
    assert CozeHook(CONN_ID).get_task_status("demo-copy-success").request_id
    assert (await CozeHook(CONN_ID).aget_task_status("demo-copy-success")).request_id
    assert emulator.oauth_exchange_count("issued") == 1


# -- the helpers' own check ------------------------------------------------------------------------


def test_in_progress_for_is_a_valid_script(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "x", in_progress_for(0.5))


# -- Test Connection (the CLI as a real process: tests/test_connection_cli.py) ---------------------


def _tested(conn_id: str, via_connection: bool) -> tuple[bool, str]:
    """The hook's ``test_connection``, directly or as Airflow's clients call it (``Connection``)."""
    if not via_connection:
        return CozeHook(conn_id).test_connection()
    from airflow.models.connection import Connection

    conn = Connection.get_connection_from_secrets(conn_id)
    hook = conn.get_hook()
    assert type(hook) is CozeHook and hook.conn_id == conn_id
    return conn.test_connection()


@pytest.mark.parametrize("via_connection", [False, True], ids=["hook", "Connection"])
def test_test_connection_names_the_app_or_the_failed_step(
    app: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch, via_connection: bool
) -> None:
    ok, message = _tested(CONN_ID, via_connection)
    assert ok is True, message
    assert message.startswith(WORKS + f"Coze at {app.base_url} issued an access token to OAuth app app-1")
    assert "(key kid-1) and accepted it" in message
    assert app.oauth_exchange_count("issued") == 1

    # The probe's task id answers 4100 to any token: renewed once, refused again.
    app.set_task("coze", PROBE_TASK_ID, [{"code": 4100, "msg": "token not accepted"}])
    ok, message = _tested(CONN_ID, via_connection)
    assert ok is False
    assert message.startswith("Step 3 of 3 (API call) failed: "), message
    assert "4100" in message
    # Each Test exchanges afresh (it tests the key, not a kept token): the first test's probe (404),
    # then this one's: a fresh token refused, renewed once, refused again.
    assert app.oauth_exchange_count("issued") == 3 and len(app.requests(task_id=PROBE_TASK_ID)) == 1 + 2

    app.revoke_oauth_key(KID)
    TOKENS.clear()  # a fresh process: no token yet
    ok, message = _tested(CONN_ID, via_connection)
    assert ok is False
    assert message.startswith("Step 2 of 3 (token exchange) failed: "), message
    assert "invalid_client" in message and "oauth_public_key_id" in message
    assert app.oauth_exchange_count("invalid_client") == 1

    set_connection(
        monkeypatch, app.base_url, keys.private[:300] + "\n-----END PRIVATE KEY-----", "coze_oauth_cut"
    )
    before = len(app.requests())
    ok, message = _tested("coze_oauth_cut", via_connection)
    assert ok is False
    assert message.startswith("Step 1 of 3 (private key) failed: "), message
    assert "does not hold a readable PEM private key" in message
    assert len(app.requests()) == before, "no request with an unreadable key"
    for text in (message,):
        assert_user_facing(text)
        assert not any(line in text for line in keys.secrets)
