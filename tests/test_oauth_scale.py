"""Coze OAuth service apps under many triggers of one account in one event loop (a triggerer).

Counted at the emulator: the loop's triggers share one access token and one exchange per token
lifetime; a token the API stops taking is renewed by one exchange; a revoked key ends every wait
after one exchange attempt. The triggers run in the test's loop, as a triggerer runs them. Last, no
secret (key, JWT, access token) in any output of all that.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.models.base import TaskStatusError
from airflow_provider_taskstatus.models.coze_oauth import OAuthApp
from airflow_provider_taskstatus.transport.tokens import TOKENS
from airflow_provider_taskstatus.triggers.coze import CozeCopyTaskTrigger
from tests.oauth_apps import (
    CONN_ID,
    FAST_POLICY,
    KID,
    Keys,
    exchange_count,
    in_progress_for,
    leaks,
    make_keys,
    register_app,
    set_connection,
)
from tests.sensor_runner import CONTEXT, QuickCozeSensor, run


@pytest.fixture(scope="module")
def keys() -> Keys:
    return make_keys()


def sensor(task_id: str, conn_id: str = CONN_ID) -> QuickCozeSensor:
    return QuickCozeSensor(
        task_id="wait",
        copy_task_id=task_id,
        coze_conn_id=conn_id,
        poke_interval=0.05,
        timeout=20,
        max_retries=0,
    )


def trigger(task_id: str, poll: float, wait: float = 60.0) -> CozeCopyTaskTrigger:
    return CozeCopyTaskTrigger(
        task_id, CONN_ID, deadline=time.time() + wait, poll_interval=poll, request_policy=FAST_POLICY
    )


async def final_event(t: CozeCopyTaskTrigger) -> dict[str, Any]:
    events = [dict(e.payload) async for e in t.run()]
    assert len(events) == 1, events
    return events[0]


async def warm_up() -> None:
    """Read the connection once before the clock starts (the first lookup loads Airflow's secrets
    machinery): no exchange, the endpoint alone."""
    await CozeHook(CONN_ID).aget_endpoint()


# -- 500 triggers over several token lifetimes ----------------------------------------------------

SCALE = 500
LIFETIME = 3.0
RUNNING_FOR = 8.0
POLL = 1.0


async def test_500_triggers_share_one_exchange_per_token_lifetime(
    emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_app(emulator, keys, token_lifetime=LIFETIME)
    set_connection(monkeypatch, emulator.base_url, keys.private)
    for i in range(SCALE):
        emulator.set_task("coze", f"scale-{i}", in_progress_for(RUNNING_FOR))
    await warm_up()
    started = time.time()
    events = await asyncio.gather(*(final_event(trigger(f"scale-{i}", POLL)) for i in range(SCALE)))
    duration = time.time() - started
    statuses = [e["status"] for e in events]
    assert statuses == ["success"] * SCALE, {s: statuses.count(s) for s in set(statuses)}
    assert all(e["payload"]["task_status"] == "successful" for e in events)
    exchanges = emulator.oauth_exchanges()
    issued = [e for e in exchanges if e["outcome"] == "issued"]
    status_calls = emulator.requests(call="status")
    rejected = [r for r in status_calls if not r["auth_valid"]]
    report = (
        f"{SCALE} triggers, token lifetime {LIFETIME:g} s, {duration:.1f} s: {len(exchanges)} exchanges "
        f"({len(issued)} issued), {len(status_calls)} status requests ({len(rejected)} refused 4100)"
    )
    print(report)
    assert len(issued) == len(exchanges) == exchange_count(), report
    assert len(issued) >= 2, f"the wait outlived a token: {report}"
    assert len(issued) <= math.ceil(duration / (LIFETIME * 0.9)) + 1, report
    assert duration < 60, report
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in status_calls:
        by_task.setdefault(r["task_id"], []).append(r)
    assert len(by_task) == SCALE
    for task_id, polls in by_task.items():
        assert polls[-1]["time"] - polls[0]["time"] >= RUNNING_FOR > 2 * LIFETIME, f"{task_id}: {report}"
        # A poll that left with a token at its very end (the loop busy past the renewal margin) is
        # refused, and resent at once with the new token.
        for before, after in itertools.pairwise(polls):
            assert before["auth_valid"] or after["auth_valid"], f"{task_id} refused twice: {report}"
        assert polls[-1]["auth_valid"]


# -- a token the API stops taking: one exchange renews it for every trigger -------------------------

#: One failed poll ends the wait: a 4100 counted as one would fail the trigger.
NO_FAILED_POLL = {**FAST_POLICY, "max_consecutive_failures": 1}


async def test_expired_token_is_renewed_by_one_exchange_for_50_triggers(
    emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_app(emulator, keys)  # tokens of 900 s: only the emulator's expiry ends the first one
    set_connection(monkeypatch, emulator.base_url, keys.private)
    for i in range(50):
        emulator.set_task("coze", f"exp-{i}", in_progress_for(2.0))
    await warm_up()
    triggers = [
        CozeCopyTaskTrigger(
            f"exp-{i}", CONN_ID, deadline=time.time() + 30, poll_interval=0.2, request_policy=NO_FAILED_POLL
        )
        for i in range(50)
    ]
    waits = asyncio.gather(*(final_event(t) for t in triggers))
    await asyncio.sleep(1.0)
    assert emulator.oauth_exchange_count("issued") == 1, "one token for the first second"
    polls_before = len(emulator.requests(call="status"))
    assert polls_before >= 50, "every trigger polled with the first token"
    emulator.expire_oauth_tokens()
    events = await waits
    assert [e["status"] for e in events] == ["success"] * 50, events
    assert emulator.oauth_exchange_count() == emulator.oauth_exchange_count("issued") == 2
    assert exchange_count() == 2
    polls = emulator.requests(call="status")
    refused = [r for r in polls if not r["auth_valid"]]
    assert 1 <= len(refused) <= 50, "the polls in flight at the expiry were refused, once each"
    for r in refused:
        later = [p for p in polls if p["task_id"] == r["task_id"] and p["time"] > r["time"]]
        assert later and later[0]["auth_valid"], f"{r['task_id']}: resent at once with the new token"


# -- a revoked key: every trigger fails after one exchange attempt ----------------------------------


async def _revoked_wait(
    emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch, poll: float
) -> list[dict[str, Any]]:
    """50 triggers of a revoked key, none with a token yet: their events."""
    register_app(emulator, keys)
    set_connection(monkeypatch, emulator.base_url, keys.private)
    emulator.revoke_oauth_key(KID)
    for i in range(50):
        emulator.set_task("coze", f"rev-{i}", in_progress_for(2.0))
    await warm_up()
    return await asyncio.gather(*(final_event(trigger(f"rev-{i}", poll)) for i in range(50)))


async def test_revoked_key_fails_50_triggers_at_once(
    emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.time()
    events = await _revoked_wait(emulator, keys, monkeypatch, 0.2)
    assert time.time() - started < 5, "fails at once, no retries"
    assert [e["status"] for e in events] == ["error"] * 50
    for e in events:
        assert "invalid_client" in e["message"] and "oauth_public_key_id" in e["message"], e
        assert "private key in its password field" in e["message"]
    assert emulator.requests(call="status") == [], "no API call without a token"
    exchanges = emulator.oauth_exchanges()
    assert {e["outcome"] for e in exchanges} == {"invalid_client"}
    # The triggers' first polls (0.2 s ± 10 %) fall in one or two slots of the trigger wheel (0.05 s):
    # one exchange per slot, as the failure of one is not remembered for the next (see below).
    assert 1 <= len(exchanges) <= 2, exchanges


async def test_revoked_key_costs_one_exchange_whatever_the_poll_spread(
    emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = await _revoked_wait(emulator, keys, monkeypatch, 2.0)
    assert [e["status"] for e in events] == ["error"] * 50
    assert emulator.oauth_exchange_count("invalid_client") == 1, emulator.oauth_exchanges()


# -- a transient exchange failure is a failed poll; the next poll exchanges again ---------------------


async def test_transient_exchange_failure_is_ridden_out_by_a_trigger(
    emulator: EmulatorServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_app(emulator, keys)
    set_connection(monkeypatch, emulator.base_url, keys.private)
    emulator.set_task("coze", "t-1", [{"task_status": "in_progress"}, {"task_status": "successful"}])
    emulator.fail_next_oauth("internal_error")
    await warm_up()
    [event] = [e.payload async for e in trigger("t-1", 0.05).run()]
    assert event["status"] == "success", event
    assert [e["outcome"] for e in emulator.oauth_exchanges()] == ["internal_error", "issued"]
    assert len(emulator.requests(task_id="t-1")) == 2
    emulator.fail_next_oauth("internal_error")
    TOKENS.clear()
    emulator.set_task("coze", "t-2", [{"task_status": "in_progress"}])
    policy = {**FAST_POLICY, "max_consecutive_failures": 1}
    t = CozeCopyTaskTrigger(
        "t-2", CONN_ID, deadline=time.time() + 10, poll_interval=0.05, request_policy=policy
    )
    [event] = [e.payload async for e in t.run()]
    assert event["status"] == "error", "with a budget of one failed poll, the failed exchange ends it"
    assert "internal_error" in event["message"] and "Coze OAuth token exchange" in event["message"]


# -- no secret in any output ----------------------------------------------------------------------


def _redact(text: str) -> Any:
    """Airflow's masker applied to ``text``, wherever the release keeps it."""
    import importlib

    for module in (
        "airflow.sdk._shared.secrets_masker",  # 3.1+
        "airflow.sdk.execution_time.secrets_masker",  # 3.0
        "airflow.utils.log.secrets_masker",  # 2.11
    ):
        try:
            return importlib.import_module(module).redact(text)
        except ImportError:
            continue
    raise AssertionError("no secrets masker found")


def test_no_secret_in_any_output(
    emulator: EmulatorServer,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Both modes, many triggers, a renewal, refusals and Test Connection, with every log captured
    (the emulator's access log too): the key, each JWT sent and each access token issued appear in
    no log line, message, repr, trigger kwargs or XCom value."""
    caplog.set_level(logging.DEBUG)
    jwts: list[str] = []
    tokens: list[str] = []
    sign, interpret = OAuthApp.jwt, OAuthApp.interpret_exchange

    def signed(self: OAuthApp, base_url: str, now: float) -> str:
        jwts.append(sign(self, base_url, now))
        return jwts[-1]

    def answered(self: OAuthApp, response: Any, now: float) -> Any:
        token = interpret(self, response, now)
        tokens.append(token.value)
        return token

    monkeypatch.setattr(OAuthApp, "jwt", signed)
    monkeypatch.setattr(OAuthApp, "interpret_exchange", answered)
    register_app(emulator, keys)
    emulator.add_oauth_app("app-2", {"kid-2": keys.public})
    set_connection(monkeypatch, emulator.base_url, keys.private)
    set_connection(
        monkeypatch,
        emulator.base_url,
        keys.private,
        "coze_revoked",
        oauth_app_id="app-2",
        oauth_public_key_id="kid-2",
    )
    emulator.revoke_oauth_key("kid-2")
    texts: list[str] = []

    # Poke mode, then deferrable: the trigger's kwargs, its events (10 more triggers alongside, the
    # token expired mid-wait), the XCom values.
    emulator.set_task(
        "coze", "poked", [{"task_status": "in_progress", "repeat": 2}, {"task_status": "successful"}]
    )
    texts.append(json.dumps(run(sensor("poked"), "poke")))
    for i in range(11):
        emulator.set_task("coze", f"deferred-{i}", in_progress_for(1.0))
    deferring = sensor("deferred-0")
    deferring.deferrable = True
    with pytest.raises(TaskDeferred) as deferred:
        deferring.execute(CONTEXT)
    texts += [json.dumps(deferred.value.trigger.serialize()), repr(deferred.value.trigger)]

    async def wait_all() -> list[dict[str, Any]]:
        others = [trigger(f"deferred-{i}", 0.1) for i in range(1, 11)]
        texts.extend(json.dumps(t.serialize()) for t in others)
        waits = asyncio.gather(final_event(deferred.value.trigger), *(final_event(t) for t in others))
        await asyncio.sleep(0.5)
        emulator.expire_oauth_tokens()
        return await waits

    events = asyncio.run(wait_all())
    assert [e["status"] for e in events] == ["success"] * 11
    texts.append(json.dumps(events))
    resumed = deferring.resume_execution(deferred.value.method_name, {"event": events[0]}, CONTEXT)
    texts.append(json.dumps(resumed))

    # The hook: a renewal on the sync path (logged), start calls, reprs.
    hook = CozeHook(CONN_ID)
    emulator.expire_oauth_tokens()
    hook.get_task_status("demo-copy-success")
    started = hook.start_copy("wf-1", "workflow")
    texts += [repr(started), repr(hook), repr(hook.get_endpoint()), repr(hook.get_endpoint().credentials)]
    texts += [repr(t) for t in TOKENS._tokens.values()]

    # Refusals: a revoked key (poke, trigger), a transient exchange failure, Test Connection.
    for make in (
        lambda: run(sensor("poked", "coze_revoked"), "poke"),
        lambda: CozeHook("coze_revoked").get_task_status("x"),
    ):
        with pytest.raises(TaskStatusError) as raised:
            make()
        texts += [str(raised.value), repr(raised.value)]
    revoked = CozeCopyTaskTrigger(
        "x", "coze_revoked", deadline=time.time() + 10, poll_interval=0.01, request_policy=FAST_POLICY
    )
    texts.append(json.dumps(asyncio.run(final_event(revoked))))
    TOKENS.clear()
    emulator.fail_next_oauth("internal_error")
    emulator.set_task("coze", "after-fault", [{"task_status": "successful"}])
    texts.append(json.dumps(run(sensor("after-fault"), "poke")))
    texts += [CozeHook(CONN_ID).test_connection()[1], CozeHook("coze_revoked").test_connection()[1]]
    texts += [json.dumps(emulator.requests()), json.dumps(emulator.oauth_exchanges())]

    captured = capfd.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), str(record.exc_text or ""), repr(record.__dict__)]
    output = "\n".join(texts)
    assert "POST /api/permission/oauth2/token" in output, "the emulator's access log was captured"
    assert "rejected the OAuth access token" in output, "the sync renewal was logged"
    issued = emulator.oauth_exchange_count("issued")
    print(f"scanned {len(output)} characters: {len(jwts)} JWTs, {len(tokens)} tokens ({issued} issued)")
    assert len(tokens) == issued >= 4 and len(jwts) == emulator.oauth_exchange_count() > issued
    found = leaks(output, [*keys.secrets, *jwts, *tokens])
    assert not found, found
    # Each was registered with Airflow's masker before anything could log it.
    assert all(_redact(secret) == "***" for secret in [*jwts, *tokens])
