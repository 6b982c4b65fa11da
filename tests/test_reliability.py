"""Every row of the reliability table, in both modes: the outcome and the exact number of requests."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSensorTimeout

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.models.base import TaskStatusError
from tests.operator_runner import Instance, QuickCozeCopy, QuickExport
from tests.operator_runner import run as run_operator
from tests.reliability_matrix import COZE, LIMITED_TIMEOUT, ROWS, SLOW_TIMEOUT, Row, render_table
from tests.sensor_runner import MODES, QuickCozeSensor, QuickTrueWatchSensor, run

README = Path(__file__).resolve().parent.parent / "README.md"


def sensor(row: Row) -> QuickCozeSensor | QuickTrueWatchSensor:
    # Default retry counts (the table's figures assume them); short waits to keep the suite fast.
    timeout = LIMITED_TIMEOUT if row.kind == "limited" else 60
    timing = {"poke_interval": 0.02, "timeout": timeout, "retry_backoff": 0.02, "max_retry_backoff": 0.1}
    slow = "delay" in row.step
    timing["request_timeout"] = SLOW_TIMEOUT if slow else 5
    if row.api == COZE:
        return QuickCozeSensor(task_id="wait", copy_task_id="r", **timing)
    return QuickTrueWatchSensor(task_id="wait", action_task_id="r", **timing)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_fault(emulator: EmulatorServer, row: Row, mode: str) -> None:
    emulator.set_task(row.api, "r", row.steps)
    started = time.monotonic()
    if row.outcome == "success":
        xcom = run(sensor(row), mode)
        assert isinstance(xcom, dict)
        assert xcom.get("task_status", xcom.get("status")) in ("successful", "ok")
    elif row.outcome == "timeout":
        with pytest.raises(AirflowSensorTimeout):
            run(sensor(row), mode)
    else:
        with pytest.raises(TaskStatusError) as caught:
            run(sensor(row), mode)
        if row.kind == "persistent":
            assert "consecutive failed polls" in str(caught.value)
    elapsed = time.monotonic() - started
    if "Retry-After" in row.step.get("headers", {}):
        assert elapsed >= 2 * 0.95, "each Retry-After: 1 was honoured"
    if "delay" in row.step:
        time.sleep(row.step["delay"])  # the emulator logs a slow request when it finally answers
    if row.kind == "limited":
        # It outlived the failure budget (more polls than a persistent fault gets), at a slowing pace.
        assert len(emulator.requests(task_id="r")) >= row.requests
        assert elapsed >= LIMITED_TIMEOUT * 0.9  # the sensor timeout, not the failure budget, ended it
    else:
        assert len(emulator.requests(task_id="r")) == row.requests


def operator(row: Row) -> QuickCozeCopy | QuickExport:
    """An operator whose started task follows the row's script, with the sensor's timings."""
    timeout = LIMITED_TIMEOUT if row.kind == "limited" else 60
    request_timeout = SLOW_TIMEOUT if "delay" in row.step else 5
    timing = {"poll_interval": 0.02, "timeout": timeout, "retry_backoff": 0.02, "max_retry_backoff": 0.1}
    if row.api == COZE:
        return QuickCozeCopy(
            task_id="copy", entity_id="e", entity_type="workflow", request_timeout=request_timeout, **timing
        )
    return QuickExport(task_id="export", request_timeout=request_timeout, **timing)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_fault_while_an_operator_waits(emulator: EmulatorServer, row: Row, mode: str) -> None:
    """The operators wait with the same trigger and tracker: the same outcome and request count per row
    (a wait's timeout fails an operator without retry, as ``AirflowFailException``)."""
    emulator.plan_starts(row.api, [{"steps": row.steps}])
    if row.outcome == "success":
        result = run_operator(operator(row), Instance(), mode)
        assert result.get("task_status", result.get("status")) in ("successful", "ok")
    else:
        expected = AirflowFailException if row.outcome == "timeout" else TaskStatusError
        with pytest.raises(expected) as caught:
            run_operator(operator(row), Instance(), mode)
        if row.outcome == "timeout":
            assert "did not finish within the operator timeout" in str(caught.value)
    if "delay" in row.step:
        time.sleep(row.step["delay"])  # the emulator logs a slow request when it finally answers
    [created] = emulator.started(row.api)
    polls = emulator.requests(row.api, task_id=created["task_id"], call="status")
    if row.kind == "limited":
        assert len(polls) >= row.requests
    else:
        assert len(polls) == row.requests
    assert emulator.start_count(row.api) == 1


def test_readme_holds_the_table() -> None:
    text = README.read_text(encoding="utf-8")
    section = re.search(
        r"<!-- reliability-table:start -->\n(.*?)\n<!-- reliability-table:end -->", text, re.S
    )
    assert section is not None, "README lacks the reliability table markers"
    assert section.group(1) == render_table(), "README table is stale: python -m tests.reliability_matrix"
