"""Per-account pacing: the budget, its adaptation to rate limits, and the turns the waits of an account take."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
from airflow_provider_taskstatus.models.base import TaskStatusError
from airflow_provider_taskstatus.transport import throttle as pacing
from airflow_provider_taskstatus.transport.throttle import AccountThrottle, account_key, budget, throttle_for
from airflow_provider_taskstatus.triggers.truewatch import TrueWatchActionTrigger

POLICY = {
    "timeout": 2.0,
    "max_retries": 0,
    "backoff": 0.05,
    "max_backoff": 0.1,
    "max_consecutive_failures": 50,
}


def test_reserve_spaces_requests_and_block_pauses_them() -> None:
    throttle = AccountThrottle(requests_per_minute=60)
    assert throttle.reserve(100.0) == 0.0
    assert throttle.reserve(100.0) == 1.0
    assert throttle.reserve(100.5) == 1.5
    unpaced = AccountThrottle()
    assert unpaced.reserve(5.0) == 0.0
    unpaced.block(5.0, 3.0)
    assert unpaced.reserve(6.0) == 2.0
    assert unpaced.reserve(9.0) == 0.0


def test_accounts_are_told_apart_without_holding_the_secret() -> None:
    key = account_key("Coze", "https://api.coze.cn", "pat_secret_value")
    assert "pat_secret_value" not in key
    assert key != account_key("Coze", "https://api.coze.cn", "pat_other")
    assert throttle_for(key) is throttle_for(key)
    with pytest.raises(ValueError, match="positive"):
        AccountThrottle(requests_per_minute=-1)


def test_a_rate_limit_halves_the_rate_once_per_cooldown_and_accepted_requests_grow_it() -> None:
    throttle = AccountThrottle(requests_per_minute=18)
    assert throttle.rate == 18
    throttle.limited(100.0)
    assert throttle.rate == 9
    throttle.limited(100.0 + pacing.COOLDOWN - 1)  # an answer to a request sent before the cut
    assert throttle.rate == 9
    throttle.limited(100.0 + pacing.COOLDOWN)
    assert throttle.rate == 4.5
    for _ in range(50):
        throttle.accepted()
    assert throttle.rate == pytest.approx(4.5 + 50 * pacing.GROWTH)
    for _ in range(10_000):
        throttle.accepted()
    assert throttle.rate == 18, "never above the budget"
    for step in range(20):
        throttle.limited(1000.0 + step * pacing.COOLDOWN)
    assert throttle.rate == pacing.MIN_RATE


def test_a_slow_poller_halves_the_rate_it_uses_not_its_budget() -> None:
    throttle = AccountThrottle(requests_per_minute=18)
    for n in range(4):  # one poll every 10 s: 6 a minute, well under the budget
        assert throttle.reserve(10.0 * n) == 0.0
    throttle.limited(35.0)
    assert throttle.rate == pytest.approx(3.0)
    assert throttle.reserve(35.0) == pytest.approx(20.0), "the next request waits for the new pace"


def test_sends_before_an_idle_spell_do_not_make_the_pace_look_slow() -> None:
    throttle = AccountThrottle(requests_per_minute=18)
    for n in range(8):
        throttle.reserve(10.0 * n)
    for n in range(3):  # an hour later, three polls 10 s apart: 6 a minute
        throttle.reserve(3600.0 + 10.0 * n)
    throttle.limited(3625.0)
    assert throttle.rate == pytest.approx(3.0), "cut from the pace of the last minute, not of the last hour"


def test_an_account_without_a_budget_is_unpaced_until_a_rate_limit() -> None:
    throttle = AccountThrottle()
    assert [throttle.reserve(5.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    throttle.limited(5.0, pause=2.0)
    assert throttle.reserve(5.0) == 2.0, "the server's Retry-After pauses the account"
    assert throttle.rate < float("inf")


def test_the_budget_comes_from_the_connection_else_a_share_of_the_documented_one() -> None:
    assert budget(20.0, None) == pytest.approx(20.0 * pacing.DOCUMENTED_SHARE)
    assert budget(20.0, 30.0) == 30.0
    assert budget(20.0, 0.0) is None
    assert budget(None, None) is None
    assert TrueWatchHook("truewatch_documented").get_endpoint().throttle.ceiling == pytest.approx(18.0)
    assert TrueWatchHook("truewatch_default").get_endpoint().throttle.ceiling == float("inf")  # extra 0
    assert CozeHook("coze_default").get_endpoint().throttle.ceiling == float("inf")  # none documented


def test_bad_rate_in_connection_is_a_clear_error() -> None:
    with pytest.raises(
        TaskStatusError,
        match=r"requests_per_minute must be a number of requests a minute \(0: no pacing\), got 'fast'",
    ):
        CozeHook("coze_bad_rate").get_endpoint()


def trigger(task_id: str, conn_id: str, wait: float, poll: float) -> TrueWatchActionTrigger:
    return TrueWatchActionTrigger(
        task_id, conn_id, deadline=time.time() + wait, poll_interval=poll, request_policy=POLICY
    )


async def last_event(trig: TrueWatchActionTrigger) -> dict[str, Any]:
    return [event.payload async for event in trig.run()][-1]


async def test_rate_limit_pauses_every_trigger_of_the_account(emulator: EmulatorServer) -> None:
    emulator.set_task(
        "truewatch",
        "limited",
        [
            {"status": "running", "repeat": 3},
            {"errorCode": "ft.TriggerApiAkCurrentLimiting", "headers": {"Retry-After": "1"}},
            {"status": "running"},
        ],
    )
    emulator.set_task("truewatch", "bystander", [{"status": "running"}])
    events = await asyncio.gather(
        last_event(trigger("limited", "truewatch_default", wait=2.0, poll=0.05)),
        last_event(trigger("bystander", "truewatch_default", wait=2.0, poll=0.05)),
    )
    assert [e["status"] for e in events] == ["timeout", "timeout"]
    [limited_at] = [r["time"] for r in emulator.requests(task_id="limited") if r["http_status"] == 401]
    bystander = [r["time"] for r in emulator.requests(task_id="bystander")]
    during_pause = [t for t in bystander if limited_at + 0.01 < t < limited_at + 0.95]
    assert during_pause == [], "the other trigger of the account must wait out the Retry-After too"
    assert any(t >= limited_at + 0.95 for t in bystander), "and then go on polling"
    assert any(t < limited_at for t in bystander)


async def test_requests_per_minute_spaces_requests_of_all_triggers(emulator: EmulatorServer) -> None:
    for name in ("p1", "p2", "p3"):
        emulator.set_task("truewatch", name, [{"status": "running"}])
    started = time.monotonic()
    await asyncio.gather(
        *(last_event(trigger(n, "truewatch_paced", wait=1.0, poll=0.01)) for n in ("p1", "p2", "p3"))
    )
    elapsed = time.monotonic() - started
    times = sorted(r["time"] for r in emulator.requests())
    # 600 a minute = one request every 0.1 s for the whole account, whatever the poll interval.
    assert len(times) <= elapsed / 0.1 + 2
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.09, f"requests closer than the budget allows: {min(gaps):.3f} s"


async def test_waits_of_a_paced_account_take_turns(emulator: EmulatorServer) -> None:
    """Five waits that could each poll every 10 ms, on an account paced at one request per 0.1 s:
    they are served round-robin, so none is polled twice before every other has been once."""
    names = [f"rr{n}" for n in range(5)]
    for name in names:
        emulator.set_task("truewatch", name, [{"status": "running"}])
    await asyncio.gather(*(last_event(trigger(n, "truewatch_paced", wait=2.0, poll=0.01)) for n in names))
    order = [r["task_id"] for r in emulator.requests()]
    assert len(order) >= 15
    counts = [order.count(name) for name in names]
    assert max(counts) - min(counts) <= 1, counts
    for start in range(len(order) - 4):
        window = order[start : start + 5]
        assert len(set(window)) == 5, f"not round-robin at request {start}: {order}"


def test_a_cut_is_logged_with_the_new_pace_and_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    key = account_key("TrueWatch", "https://openapi.example", "tw_secret_value")
    throttle = throttle_for(key, 18.0)
    with caplog.at_level("INFO", logger=pacing.__name__):
        throttle.limited(100.0)
    [line] = [r.getMessage() for r in caplog.records if r.name == pacing.__name__]
    assert line.startswith("The TrueWatch account at https://openapi.example (secret ")
    assert "now sends it 9 requests a minute (was 18)" in line
    assert "tw_secret_value" not in line
