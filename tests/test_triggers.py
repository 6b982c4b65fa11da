"""Triggers: serialize() round trip and ``async for event in trigger.run()`` against the emulator."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.triggers.base import TaskStatusTrigger
from airflow_provider_taskstatus.triggers.coze import CozeCopyTaskTrigger
from airflow_provider_taskstatus.triggers.truewatch import TrueWatchActionTrigger
from tests.conftest import BAD_COZE_TOKEN, BAD_TRUEWATCH_KEY

FAST_POLICY = {
    "timeout": 2.0,
    "max_retries": 0,
    "backoff": 0.01,
    "max_backoff": 0.05,
    "max_consecutive_failures": 3,
}


def coze_trigger(
    task_id: str, conn_id: str = "coze_default", wait: float = 10, **kw: Any
) -> CozeCopyTaskTrigger:
    return CozeCopyTaskTrigger(
        task_id, conn_id, deadline=time.time() + wait, poll_interval=0.02, request_policy=FAST_POLICY, **kw
    )


def tw_trigger(
    task_id: str, conn_id: str = "truewatch_default", wait: float = 10, **kw: Any
) -> TrueWatchActionTrigger:
    return TrueWatchActionTrigger(
        task_id, conn_id, deadline=time.time() + wait, poll_interval=0.02, request_policy=FAST_POLICY, **kw
    )


async def events(trigger: TaskStatusTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


@pytest.mark.parametrize("trigger_class", [CozeCopyTaskTrigger, TrueWatchActionTrigger])
def test_serialize_round_trip_holds_plain_values_only(trigger_class: type[TaskStatusTrigger]) -> None:
    trigger = trigger_class(
        "id/1", "some_conn", deadline=1_900_000_000.5, poll_interval=7, allow_partial=True
    )
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    assert getattr(importlib.import_module(module), name) is trigger_class
    json.dumps(kwargs)  # plain JSON values, nothing else
    assert kwargs["deadline"] == 1_900_000_000.5, "an absolute deadline survives a triggerer restart"
    rebuilt = trigger_class(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("make", "secret"),
    [
        (lambda: coze_trigger("x", "coze_bad_token"), BAD_COZE_TOKEN),
        (lambda: tw_trigger("x", "truewatch_bad_key"), BAD_TRUEWATCH_KEY),
    ],
)
async def test_no_secret_in_kwargs_repr_or_events(
    emulator: EmulatorServer, make: Callable[[], TaskStatusTrigger], secret: str
) -> None:
    trigger = make()
    assert secret not in json.dumps(trigger.serialize())
    assert secret not in repr(trigger)
    [event] = await events(trigger)
    assert event["status"] == "error"
    assert secret not in json.dumps(event)


async def test_coze_success_event_carries_data(emulator: EmulatorServer) -> None:
    [event] = await events(coze_trigger("demo-copy-success"))
    assert event["status"] == "success"
    assert event["payload"]["task_status"] == "successful"
    assert len(emulator.requests(task_id="demo-copy-success")) == 4


async def test_coze_failed_event_names_reasons(emulator: EmulatorServer) -> None:
    [event] = await events(coze_trigger("demo-copy-failed"))
    assert event["status"] == "failed"
    assert "单词学习助手" in event["message"] and "logid:" in event["message"]


@pytest.mark.parametrize(
    ("task_id", "allow_partial", "status", "text"),
    [
        ("demo-export-ok", False, "success", "finished ok"),
        ("demo-import-partial", False, "failed", "2 resource(s) failed"),
        ("demo-import-partial", True, "success", "accepted: allow_partial=True"),
        ("demo-export-partial", False, "failed", "export failures"),
        ("demo-error", False, "failed", "errorCode ft.ResourceImportError"),
        ("demo-cancel", False, "failed", "was cancelled"),
    ],
)
async def test_truewatch_outcomes(
    emulator: EmulatorServer, task_id: str, allow_partial: bool, status: str, text: str
) -> None:
    [event] = await events(tw_trigger(task_id, allow_partial=allow_partial))
    assert event["status"] == status
    assert text in event["message"]
    assert event["payload"]["status"] in ("ok", "error", "cancel")
    assert event["warning"] is (allow_partial and task_id == "demo-import-partial")


async def test_fatal_error_ends_after_one_request(emulator: EmulatorServer) -> None:
    [event] = await events(coze_trigger("demo-copy-success", "coze_bad_token"))
    assert event["status"] == "error"
    assert "Coze API error 4100" in event["message"]
    assert len(emulator.requests()) == 1, "no hot loop on a fatal error"


async def test_unknown_status_keeps_waiting(emulator: EmulatorServer) -> None:
    emulator.set_task("truewatch", "t-odd", [{"status": "queued_elsewhere", "repeat": 3}, {"status": "ok"}])
    [event] = await events(tw_trigger("t-odd"))
    assert event["status"] == "success"
    assert len(emulator.requests(task_id="t-odd")) == 4


async def test_transient_burst_is_ridden_out(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "t-burst", [{"http_status": 503, "repeat": 2}, {"task_status": "successful"}])
    [event] = await events(coze_trigger("t-burst"))
    assert event["status"] == "success"
    assert len(emulator.requests(task_id="t-burst")) == 3


async def test_consecutive_failures_end_the_wait(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "t-down", [{"http_status": 502}])
    [event] = await events(coze_trigger("t-down"))
    assert event["status"] == "error"
    assert "Gave up after 3 consecutive failed polls" in event["message"]
    assert len(emulator.requests(task_id="t-down")) == 3


async def test_deadline_gives_timeout_event(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "t-forever", [{"task_status": "in_progress"}])
    started = time.monotonic()
    [event] = await events(coze_trigger("t-forever", wait=0.3))
    assert event["status"] == "timeout"
    assert "did not finish within the sensor timeout" in event["message"]
    assert 0.25 <= time.monotonic() - started < 3
    assert event["payload"]["task_status"] == "in_progress"


async def test_missing_connection_is_an_error_event(emulator: EmulatorServer) -> None:
    [event] = await events(coze_trigger("x", "nowhere"))
    assert event["status"] == "error"
    assert "Connection 'nowhere' is not defined" in event["message"]


async def test_execution_deadline_first_gives_execution_timeout_event(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "t-long", [{"task_status": "in_progress"}])
    trigger = coze_trigger("t-long", wait=30)
    trigger.execution_deadline = time.time() + 0.3
    [event] = await events(trigger)
    assert event["status"] == "execution_timeout"
    assert "did not finish within the execution_timeout" in event["message"]


async def test_restart_from_serialized_kwargs_keeps_the_original_deadline(emulator: EmulatorServer) -> None:
    import asyncio

    emulator.set_task("truewatch", "t-restart", [{"status": "running"}])
    first = tw_trigger("t-restart", wait=1.0)
    started = time.monotonic()
    with pytest.raises(TimeoutError):  # the triggerer dies mid-wait
        await asyncio.wait_for(events(first), timeout=0.5)
    _, kwargs = first.serialize()
    [event] = await events(TrueWatchActionTrigger(**kwargs))
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 1.4, "the restarted trigger ends at the original deadline"
    polls = emulator.requests(task_id="t-restart")
    assert len(polls) >= 10, "it kept polling across the restart"
