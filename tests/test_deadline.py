"""A request never outlives the wait's deadline: hooks, coalesced waiters and triggers, over real HTTP.

The answers here take 20 s; every wait must end within its deadline + 1 s, with the default
request policy (30 s per request, 2 retries), which alone would run ~90 s late.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.emulator.server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
from airflow_provider_taskstatus.models.base import ApiError, DeadlineError, ErrorKind, State, TaskStatus
from airflow_provider_taskstatus.transport.throttle import AccountThrottle
from airflow_provider_taskstatus.triggers.coze import CozeCopyTaskTrigger
from airflow_provider_taskstatus.triggers.truewatch import TrueWatchActionTrigger

WAIT = 2.0
SLOW = 20
#: Allowed lateness past the deadline.
GRACE = 1.0
STEPS = {
    "coze": ({"task_status": "in_progress"}, {"task_status": "in_progress", "delay": SLOW}),
    "truewatch": ({"status": "running"}, {"status": "running", "delay": SLOW}),
}
HOOKS: dict[str, type[TaskStatusHook]] = {"coze": CozeHook, "truewatch": TrueWatchHook}


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[EmulatorServer]:
    """An emulator of its own: the 20 s answers it leaves pending must not land in another test's log."""
    with EmulatorServer(access_log=False) as server:
        yield server


@pytest.fixture
def slow(slow_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    slow_emulator.reset()
    for api, secret in (("coze", DEFAULT_COZE_TOKEN), ("truewatch", DEFAULT_TRUEWATCH_KEY)):
        # Unpaced (0): these tests time the deadline, not TrueWatch's default pacing.
        conn = {"conn_type": api, "host": slow_emulator.base_url, "password": secret}
        conn["extra"] = {"requests_per_minute": 0}
        monkeypatch.setenv(f"AIRFLOW_CONN_{api.upper()}_SLOW", json.dumps(conn))
        paced = {**conn, "extra": {"requests_per_minute": 6}}
        monkeypatch.setenv(f"AIRFLOW_CONN_{api.upper()}_SLOW_PACED", json.dumps(paced))
    return slow_emulator


def _late(started: float, label: str) -> float:
    """Seconds past the deadline; printed, so that ``pytest -rP`` shows the figures."""
    lateness = time.monotonic() - started - WAIT
    print(f"{label}: ended {lateness:+.3f} s after the deadline")
    return lateness


async def _status(hook: TaskStatusHook, mode: str, task_id: str, deadline: float) -> TaskStatus:
    if mode == "sync":
        return hook.get_task_status(task_id, deadline=deadline)
    return await hook.aget_task_status(task_id, deadline=deadline)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("api", ["coze", "truewatch"])
async def test_a_slow_answer_is_cut_at_the_deadline(slow: EmulatorServer, mode: str, api: str) -> None:
    slow.set_task(api, "t-slow", [STEPS[api][1]])
    hook = HOOKS[api](f"{api}_slow")  # the default policy: 30 s per request, 2 retries
    started = time.monotonic()
    with pytest.raises(DeadlineError) as caught:
        await _status(hook, mode, "t-slow", time.time() + WAIT)
    lateness = _late(started, f"hook {api} {mode}")
    assert -0.05 <= lateness <= GRACE
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert str(caught.value).startswith(f"No answer from {slow.base_url}/")
    assert str(caught.value).endswith("before the wait's deadline")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_deadline_already_past_sends_nothing(slow: EmulatorServer, mode: str) -> None:
    with pytest.raises(DeadlineError):
        await _status(CozeHook("coze_slow"), mode, "demo-copy-success", time.time() - 1)
    assert slow.requests() == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_no_backoff_runs_past_the_deadline(slow: EmulatorServer, mode: str) -> None:
    """A Retry-After longer than the time left ends the call at once, with the API's error."""
    slow.set_task("coze", "t-503", [{"http_status": 503, "headers": {"Retry-After": "10"}}])
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        await _status(CozeHook("coze_slow"), mode, "t-503", time.time() + WAIT)
    assert time.monotonic() - started < 1.0
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert caught.value.http_status == 503
    assert str(caught.value).endswith("; the wait's deadline leaves no time to retry")
    assert len(slow.requests(task_id="t-503")) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_no_throttle_wait_runs_past_the_deadline(slow: EmulatorServer, mode: str) -> None:
    """An account paced at 6 requests a minute: the next slot is 10 s away, the deadline 2 s."""
    hook = CozeHook("coze_slow_paced")
    assert (await _status(hook, mode, "demo-copy-workflow", time.time() + WAIT)).state is State.SUCCEEDED
    started = time.monotonic()
    with pytest.raises(DeadlineError, match="request pacing or rate-limit pause reaches past it"):
        await _status(hook, mode, "demo-copy-workflow", time.time() + WAIT)
    assert time.monotonic() - started < 0.5, "it did not sleep towards a slot it cannot use"
    assert len(slow.requests()) == 1


def test_a_slot_past_the_deadline_is_not_taken() -> None:
    throttle = AccountThrottle(requests_per_minute=60)
    assert throttle.reserve(100.0) == 0.0
    assert throttle.reserve(100.0, until=100.5) is None, "the next slot opens at 101"
    assert throttle.reserve(100.0, until=101.5) == 1.0, "the refused call took no slot"


# -- coalesced waiters, each with its own deadline ------------------------------------------------


async def test_a_waiter_joining_a_shared_request_keeps_its_own_deadline(slow: EmulatorServer) -> None:
    """The first caller's request has 4 s; a second caller joins with 2 s: it leaves at 2 s, and the
    shared request goes on for the first caller (one request in all)."""
    slow.set_task("coze", "t-shared", [STEPS["coze"][1], *STEPS["coze"][:1]])
    hook = CozeHook("coze_slow")
    started = time.monotonic()
    first = asyncio.ensure_future(hook.aget_task_status("t-shared", deadline=time.time() + 2 * WAIT))
    await asyncio.sleep(0.1)
    with pytest.raises(DeadlineError):
        await hook.aget_task_status("t-shared", deadline=time.time() + WAIT - 0.1)
    assert -0.05 <= _late(started, "joiner with the nearer deadline") <= GRACE
    assert not first.done(), "leaving did not cancel the shared request"
    with pytest.raises(DeadlineError):
        await first
    lateness = time.monotonic() - started - 2 * WAIT
    print(f"first caller: ended {lateness:+.3f} s after its deadline")
    assert -0.05 <= lateness <= GRACE
    # One request was used up: the next one gets the script's second step, answered at once.
    assert (await hook.aget_task_status("t-shared", deadline=time.time() + WAIT)).state is State.RUNNING
    assert len(slow.requests(task_id="t-shared")) == 1, "only the prompt answer is logged yet"


async def test_a_waiter_outliving_the_shared_request_asks_again(slow: EmulatorServer) -> None:
    """The first caller has 2 s, the joiner 4 s: when the first caller's deadline cuts the shared
    request, the joiner does not inherit that error; it asks again and gets the prompt answer."""
    slow.set_task("truewatch", "t-again", [STEPS["truewatch"][1], {"status": "ok"}])
    hook = TrueWatchHook("truewatch_slow")
    started = time.monotonic()
    first = asyncio.ensure_future(hook.aget_task_status("t-again", deadline=time.time() + WAIT))
    await asyncio.sleep(0.1)
    status = await hook.aget_task_status("t-again", deadline=time.time() + 2 * WAIT)
    assert status.state is State.SUCCEEDED
    assert first.done()
    with pytest.raises(DeadlineError):
        first.result()
    assert -0.05 <= _late(started, "joiner asking again after the first caller's deadline") <= GRACE


# -- triggers -------------------------------------------------------------------------------------


async def _events(trigger: Any) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


@pytest.mark.parametrize(
    ("api", "trigger_class"), [("coze", CozeCopyTaskTrigger), ("truewatch", TrueWatchActionTrigger)]
)
async def test_trigger_ends_at_its_deadline_with_a_slow_answer(
    slow: EmulatorServer, api: str, trigger_class: type[Any]
) -> None:
    """One prompt answer, then one that takes 20 s. A budget of one failed poll proves the cut poll
    is not counted as one: the wait ends with its timeout event, naming the last status."""
    slow.set_task(api, "t-trig", list(STEPS[api]))
    started = time.monotonic()
    trigger = trigger_class(
        "t-trig",
        f"{api}_slow",
        deadline=time.time() + WAIT,
        poll_interval=0.05,
        request_policy={"max_consecutive_failures": 1},  # otherwise the default: 30 s, 2 retries
    )
    [event] = await _events(trigger)
    assert -0.05 <= _late(started, f"trigger {api}") <= GRACE
    assert event["status"] == "timeout"
    assert "did not finish within the sensor timeout; last status: " in event["message"]
    assert "'t-trig'" in event["message"].split("last status: ")[1], "the last status seen is named"
    assert event["payload"] is not None


async def test_trigger_execution_deadline_cuts_the_request_too(slow: EmulatorServer) -> None:
    slow.set_task("coze", "t-exec", [STEPS["coze"][1]])
    started = time.monotonic()
    trigger = CozeCopyTaskTrigger(
        "t-exec",
        "coze_slow",
        deadline=time.time() + 60,
        poll_interval=0.05,
        execution_deadline=time.time() + WAIT,
    )
    [event] = await _events(trigger)
    assert -0.05 <= _late(started, "trigger, execution_timeout nearer") <= GRACE
    assert event["status"] == "execution_timeout"
    assert "did not finish within the execution_timeout; last status: not polled" in event["message"]


async def test_coalesced_triggers_end_each_at_its_own_deadline(slow: EmulatorServer) -> None:
    slow.set_task("coze", "t-many", [STEPS["coze"][1]])
    now = time.time()
    triggers = [
        CozeCopyTaskTrigger("t-many", "coze_slow", deadline=now + wait, poll_interval=0.05)
        for wait in (WAIT, WAIT + 1, WAIT + 2)
    ]
    started = time.monotonic()

    async def timed(trigger: CozeCopyTaskTrigger) -> tuple[float, str]:
        [event] = await _events(trigger)
        return time.monotonic() - started, event["status"]

    results = await asyncio.gather(*(timed(t) for t in triggers))
    for (elapsed, status), extra in zip(results, (0, 1, 2), strict=True):
        lateness = elapsed - WAIT - extra
        print(f"coalesced trigger with {WAIT + extra:g} s: ended {lateness:+.3f} s after its deadline")
        assert status == "timeout"
        assert -0.1 <= lateness <= GRACE
