"""Sensors in both modes against the emulator: every row of the outcome table, poke and deferrable.

Deferrable runs go the way Airflow takes them: ``execute`` raises ``TaskDeferred``, the trigger
runs to its event, and ``resume_execution`` (which applies ``soft_fail``) calls ``execute_complete``.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from datetime import timedelta
from typing import Any, cast

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    Context,
    TaskDeferred,
)

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.models.base import TaskStatusError
from airflow_provider_taskstatus.sensors.coze import CozeCopyTaskSensor
from airflow_provider_taskstatus.sensors.truewatch import TrueWatchActionSensor
from airflow_provider_taskstatus.triggers.coze import CozeCopyTaskTrigger
from airflow_provider_taskstatus.waiting import DEFER_GRACE
from tests.compat import deferral_timeout_resume
from tests.sensor_runner import CONTEXT, MODES, QuickCozeSensor, QuickTrueWatchSensor, first_event, run

FAST = {"poke_interval": 0.05, "timeout": 10, "request_timeout": 2, "max_retries": 0, "retry_backoff": 0.05}
REASONS = [{"entity_id": "9", "entity_name": "kb", "entity_type": "knowledge", "failed_reason": "quota"}]


def coze(task_id: str = "t", **kwargs: Any) -> CozeCopyTaskSensor:
    return QuickCozeSensor(task_id="wait", copy_task_id=task_id, **{**FAST, **kwargs})


def truewatch(task_id: str = "t", **kwargs: Any) -> TrueWatchActionSensor:
    return QuickTrueWatchSensor(task_id="wait", action_task_id=task_id, **{**FAST, **kwargs})


# (api, steps, sensor kwargs, expected outcome, text in the message or a key of the XCom value)
ROWS = [
    (
        "coze",
        [{"task_status": "in_progress", "repeat": 2}, {"task_status": "successful"}],
        {},
        "success",
        "task_status",
    ),
    (
        "coze",
        [{"task_status": "in_progress"}, {"task_status": "failed", "failed_reasons": REASONS}],
        {},
        AirflowFailException,
        "knowledge 'kb' (id 9): quota",
    ),
    (
        "coze",
        [{"task_status": "failed", "failed_reasons": REASONS}],
        {"soft_fail": True},
        AirflowSkipException,
        "soft_fail",
    ),
    (
        "coze",
        [{"task_status": "mystery", "repeat": 2}, {"task_status": "successful"}],
        {},
        "success",
        "task_status",
    ),
    ("coze", [{"task_status": "in_progress"}], {"timeout": 0.4}, AirflowSensorTimeout, ""),
    ("coze", [{"task_status": "in_progress"}], {"timeout": 0.4, "soft_fail": True}, AirflowSkipException, ""),
    ("coze", [{"code": 4100, "msg": "bad token"}], {}, TaskStatusError, "Coze API error 4100"),
    (
        "coze",
        [{"code": 4100, "msg": "bad token"}],
        {"soft_fail": True},
        TaskStatusError,
        "Coze API error 4100",
    ),
    ("coze", [{"code": 4200, "msg": "no such task"}], {}, TaskStatusError, "Coze API error 4200"),
    (
        "coze",
        [{"http_status": 503, "repeat": 2}, {"task_status": "successful"}],
        {},
        "success",
        "task_status",
    ),
    (
        "coze",
        [{"http_status": 503}],
        {"max_consecutive_failures": 3},
        TaskStatusError,
        "3 consecutive failed polls",
    ),
    ("truewatch", [{"status": "start"}, {"status": "running"}, {"status": "ok"}], {}, "success", "status"),
    (
        "truewatch",
        [{"status": "ok", "import_info": {"successCount": 1, "failCount": 2}}],
        {},
        AirflowFailException,
        "2 resource(s) failed",
    ),
    (
        "truewatch",
        [{"status": "ok", "import_info": {"failCount": 2}}],
        {"allow_partial": True},
        "success",
        "import_info",
    ),
    (
        "truewatch",
        [{"status": "ok", "import_info": {"exportFailedInfo": ["x"]}}],
        {},
        AirflowFailException,
        "export failures",
    ),
    (
        "truewatch",
        [{"status": "running"}, {"status": "error", "errorCode": "ft.Boom", "message": "zip"}],
        {},
        AirflowFailException,
        "errorCode ft.Boom: zip",
    ),
    ("truewatch", [{"status": "cancel"}], {}, AirflowFailException, "was cancelled"),
    ("truewatch", [{"status": "cancel"}], {"soft_fail": True}, AirflowSkipException, "soft_fail"),
    ("truewatch", [{"status": "paused"}, {"status": "ok"}], {}, "success", "status"),
    ("truewatch", [{"status": "running"}], {"timeout": 0.4}, AirflowSensorTimeout, ""),
    ("truewatch", [{"errorCode": "ft.InvalidAPIKey"}], {}, TaskStatusError, "ft.InvalidAPIKey"),
    (
        "truewatch",
        [{"errorCode": "ft.TriggerApiAkCurrentLimiting", "repeat": 2}, {"status": "ok"}],
        {},
        "success",
        "status",
    ),
]
ROW_IDS = [
    "coze-success",
    "coze-failed",
    "coze-failed-soft",
    "coze-unknown",
    "coze-timeout",
    "coze-timeout-soft",
    "coze-auth",
    "coze-auth-soft",
    "coze-not-found",
    "coze-transient",
    "coze-transient-exhausted",
    "tw-ok",
    "tw-partial",
    "tw-partial-allowed",
    "tw-export-partial",
    "tw-error",
    "tw-cancel",
    "tw-cancel-soft",
    "tw-unknown",
    "tw-timeout",
    "tw-auth",
    "tw-rate-limited-401",
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("api", "steps", "kwargs", "outcome", "text"), ROWS, ids=ROW_IDS)
def test_outcome_table(
    emulator: EmulatorServer,
    mode: str,
    api: str,
    steps: list[dict[str, Any]],
    kwargs: dict[str, Any],
    outcome: Any,
    text: str,
) -> None:
    emulator.set_task(api, "t", steps)
    sensor = coze(**kwargs) if api == "coze" else truewatch(**kwargs)
    if outcome == "success":
        xcom = run(sensor, mode)
        assert isinstance(xcom, dict)
        assert text in xcom
        return
    with pytest.raises(outcome) as caught:
        run(sensor, mode)
    assert text in str(caught.value)
    if outcome is TaskStatusError and "consecutive" not in text:
        assert len(emulator.requests(task_id="t")) == 1, "a fatal error costs one request"


@pytest.mark.parametrize("mode", MODES)
def test_xcom_is_the_api_object(emulator: EmulatorServer, mode: str) -> None:
    data = run(coze("demo-copy-workflow"), mode)
    assert data["entity_type"] == "workflow"
    assert set(data) >= {
        "task_id",
        "task_status",
        "source_entity_id",
        "target_entity_id",
        "target_workspace_id",
    }
    content = run(truewatch("demo-import-ok"), mode)
    assert content["import_info"] == {"successCount": 12, "failCount": 0}


def test_finished_task_never_defers(emulator: EmulatorServer) -> None:
    sensor = coze("demo-copy-workflow", deferrable=True)
    assert sensor.execute(CONTEXT)["task_status"] == "successful"


def test_defers_with_the_remaining_timeout(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "t", [{"task_status": "in_progress", "delay": 0.3}])
    sensor = coze(deferrable=True, timeout=60, poke_interval=3)
    before = time.time()
    with pytest.raises(TaskDeferred) as caught:
        sensor.execute(CONTEXT)
    deferred = caught.value
    trigger = deferred.trigger
    assert isinstance(trigger, CozeCopyTaskTrigger)
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout is not None
    remaining = deferred.timeout.total_seconds()
    assert 59 - 0.3 < remaining - DEFER_GRACE <= 60 - 0.3, "the first poke's time is taken off the timeout"
    assert before + 59.9 <= trigger.deadline <= before + 60.1, "deadline = start of the wait + timeout"
    _, kwargs = trigger.serialize()
    assert kwargs["remote_task_id"] == "t"
    assert kwargs["conn_id"] == "coze_default"
    assert kwargs["poll_interval"] == 3


def test_airflow_defer_timeout_is_a_sensor_timeout() -> None:
    method, fail = deferral_timeout_resume()
    with pytest.raises(AirflowSensorTimeout):
        coze().resume_execution(method, fail, CONTEXT)
    with pytest.raises(AirflowSkipException, match="soft_fail"):
        coze(soft_fail=True).resume_execution(method, fail, CONTEXT)


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        ({"status": "success", "message": "ok", "payload": {"a": 1}}, {"a": 1}),
        ({"status": "failed", "message": "remote failed"}, AirflowFailException),
        ({"status": "timeout", "message": "too slow"}, AirflowSensorTimeout),
        ({"status": "execution_timeout", "message": "too long"}, AirflowTaskTimeout),
        ({"status": "error", "message": "bad token"}, TaskStatusError),
        ({"status": "cancelled", "message": "?"}, TaskStatusError),
        ({"message": "no status"}, TaskStatusError),
        (None, TaskStatusError),
    ],
    ids=["success", "failed", "timeout", "execution-timeout", "error", "unknown-status", "no-status", "none"],
)
def test_execute_complete(event: dict[str, Any] | None, outcome: Any) -> None:
    sensor = coze()
    if isinstance(outcome, dict):
        assert sensor.execute_complete(CONTEXT, event) == outcome
        return
    with pytest.raises(outcome):
        sensor.execute_complete(CONTEXT, event)


def test_remote_task_id_is_templated() -> None:
    sensor = CozeCopyTaskSensor(
        task_id="wait", copy_task_id="{{ params.copy_id }}", coze_conn_id="{{ params.conn }}"
    )
    assert "copy_task_id" in sensor.template_fields
    sensor.render_template_fields(
        cast("Context", {"params": {"copy_id": "7530938808750080", "conn": "coze_eu"}})
    )
    assert sensor.copy_task_id == "7530938808750080"
    assert sensor.coze_conn_id == "coze_eu"
    tw = TrueWatchActionSensor(task_id="wait", action_task_id="{{ params.tid }}")
    tw.render_template_fields(cast("Context", {"params": {"tid": "task_abc"}}))
    assert tw.action_task_id == "task_abc"


@pytest.mark.parametrize("mode", MODES)
def test_empty_rendered_id_fails_clearly_without_a_request(emulator: EmulatorServer, mode: str) -> None:
    with pytest.raises(ValueError, match="copy_task_id is empty"):
        run(coze(""), mode)
    assert emulator.requests() == []


def test_defaults() -> None:
    sensor = truewatch()
    assert sensor.truewatch_conn_id == "truewatch_default"
    assert TrueWatchActionSensor(task_id="w", action_task_id="x").poke_interval == 10
    assert CozeCopyTaskSensor(task_id="w", copy_task_id="x").poke_interval == 5
    assert CozeCopyTaskSensor(task_id="w", copy_task_id="x").coze_conn_id == "coze_default"


@pytest.mark.parametrize("mode", MODES)
def test_no_secret_in_any_output(
    emulator: EmulatorServer, mode: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from tests.conftest import BAD_COZE_TOKEN, BAD_TRUEWATCH_KEY

    caplog.set_level("DEBUG")
    raised = []
    for sensor in (
        coze("demo-copy-success", coze_conn_id="coze_bad_token"),
        truewatch("demo-import-ok", truewatch_conn_id="truewatch_bad_key"),
    ):
        with pytest.raises(TaskStatusError) as caught:
            run(sensor, mode)
        raised.append(f"{caught.value!s} {caught.value!r} {sensor!r}")
    out, err = capfd.readouterr()
    seen = "\n".join([out, err, caplog.text, *raised])
    assert "4100" in seen and "ft.InvalidAPIKey" in seen, "the failure itself is reported"
    assert BAD_COZE_TOKEN not in seen
    assert BAD_TRUEWATCH_KEY not in seen


def test_execution_timeout_while_deferred(emulator: EmulatorServer) -> None:
    from datetime import timedelta

    from airflow.providers.common.compat.sdk import AirflowTaskTimeout

    emulator.set_task("coze", "t", [{"task_status": "in_progress"}])
    sensor = coze(timeout=60, execution_timeout=timedelta(seconds=0.5), deferrable=True)
    with pytest.raises(TaskDeferred) as caught:
        sensor.execute(CONTEXT)
    assert caught.value.timeout is not None
    assert caught.value.timeout.total_seconds() <= 0.5 + DEFER_GRACE, "Airflow enforces the nearer limit"
    event = asyncio.run(first_event(caught.value.trigger))
    assert event["status"] == "execution_timeout"
    with pytest.raises(AirflowTaskTimeout):
        sensor.resume_execution("execute_complete", {"event": event}, CONTEXT)


@pytest.mark.parametrize("mode", MODES)
def test_a_connection_of_the_other_service_fails_before_any_request(
    emulator: EmulatorServer, mode: str
) -> None:
    """A Coze token given to a TrueWatch sensor (or the reverse) is never sent anywhere."""
    emulator.set_task("truewatch", "t", [{"status": "running"}])
    emulator.set_task("coze", "t", [{"task_status": "in_progress"}])
    with pytest.raises(TaskStatusError, match="is of type 'coze', but TrueWatchHook needs a 'truewatch'"):
        run(truewatch(truewatch_conn_id="coze_default"), mode)
    with pytest.raises(TaskStatusError, match="is of type 'truewatch', but CozeHook needs a 'coze'"):
        run(coze(coze_conn_id="truewatch_default"), mode)
    assert emulator.requests() == []


# -- parse-time checks (issue 9) ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["false", "False", 0, 1, None])
def test_a_boolean_parameter_must_be_a_boolean(value: object) -> None:
    with pytest.raises(TypeError, match=rf"allow_partial must be True or False, got {value!r}"):
        TrueWatchActionSensor(task_id="w", action_task_id="x", allow_partial=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="deferrable must be True or False"):
        CozeCopyTaskSensor(task_id="w", copy_task_id="x", deferrable=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("interval", [0, 0.5, timedelta(milliseconds=200)])
def test_poke_interval_has_a_floor_of_one_second(interval: float | timedelta) -> None:
    with pytest.raises(ValueError, match=r"poke_interval=0(\.\d+)? s is below 1 s"):
        CozeCopyTaskSensor(task_id="w", copy_task_id="x", poke_interval=interval)
    assert CozeCopyTaskSensor(task_id="w", copy_task_id="x", poke_interval=1).poke_interval == 1


def test_a_truewatch_interval_that_alone_breaks_the_documented_budget_warns() -> None:
    with pytest.warns(
        UserWarning, match=r"poke_interval=2 s alone makes 30 requests a minute, more than the 20"
    ):
        TrueWatchActionSensor(task_id="w", action_task_id="x", poke_interval=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 3 s is exactly the budget; Coze documents none
        TrueWatchActionSensor(task_id="w", action_task_id="x", poke_interval=3)
        CozeCopyTaskSensor(task_id="w", copy_task_id="x", poke_interval=1)


# -- soft_fail and never_fail, whenever the failure is seen (issue 9) --------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("flag", ["soft_fail", "never_fail"])
@pytest.mark.parametrize("first_poll", [True, False], ids=["failed-at-first-poll", "failed-later"])
def test_a_remote_failure_is_skipped_with_its_reason(
    emulator: EmulatorServer, mode: str, flag: str, first_poll: bool
) -> None:
    failed = {"task_status": "failed", "failed_reasons": REASONS}
    emulator.set_task("coze", "t", [failed] if first_poll else [{"task_status": "in_progress"}, failed])
    with pytest.raises(AirflowSkipException) as caught:
        run(coze(**{flag: True}), mode)
    assert str(caught.value).startswith(f"Skipping due to {flag}: Coze copy task 't' (bot) failed")
    assert "knowledge 'kb' (id 9): quota" in str(caught.value)


@pytest.mark.parametrize("mode", MODES)
def test_never_fail_also_skips_an_api_error_and_soft_fail_does_not(
    emulator: EmulatorServer, mode: str
) -> None:
    emulator.set_task("coze", "t", [{"code": 4100, "msg": "bad token"}])
    with pytest.raises(AirflowSkipException, match="Skipping due to never_fail: Coze API error 4100"):
        run(coze(never_fail=True), mode)
    with pytest.raises(TaskStatusError, match="Coze API error 4100"):
        run(coze(soft_fail=True), mode)


@pytest.mark.parametrize("mode", MODES)
def test_a_timeout_under_soft_fail_keeps_the_last_status(emulator: EmulatorServer, mode: str) -> None:
    emulator.set_task("coze", "t", [{"task_status": "in_progress"}])
    with pytest.raises(AirflowSkipException) as caught:
        run(coze(timeout=1, soft_fail=True), mode)
    message = str(caught.value)
    assert message.startswith(
        "Skipping due to soft_fail: Coze task 't' did not finish within the sensor timeout"
    )
    assert "last status:" in message


@pytest.mark.parametrize("mode", MODES)
def test_the_failure_budget_counts_the_first_poke_in_every_mode(emulator: EmulatorServer, mode: str) -> None:
    emulator.set_task("coze", "t", [{"http_status": 503, "body": "down"}])
    with pytest.raises(TaskStatusError, match="Gave up after 3 consecutive failed polls"):
        run(coze(max_consecutive_failures=3), mode)
    # One request per poll (max_retries=0): the deferred trigger went on counting from the first poke.
    assert len(emulator.requests(task_id="t")) == 3


def test_a_long_id_is_shortened_in_the_timeout_message(emulator: EmulatorServer) -> None:
    long_id = "x" * 5000
    emulator.set_task("coze", long_id, [{"task_status": "in_progress"}])
    with pytest.raises(AirflowSensorTimeout) as caught:
        run(coze(long_id, timeout=0.2), "poke")
    assert len(str(caught.value)) < 1000
    assert "(5000 characters)" in str(caught.value)
