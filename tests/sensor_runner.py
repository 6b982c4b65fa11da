"""Run a sensor to its end the way Airflow would, in poke or deferrable mode."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from airflow.providers.common.compat.sdk import Context, TaskDeferred

from airflow_provider_taskstatus.sensors.base import TaskStatusSensor
from airflow_provider_taskstatus.sensors.coze import CozeCopyTaskSensor
from airflow_provider_taskstatus.sensors.truewatch import TrueWatchActionSensor
from airflow_provider_taskstatus.triggers.base import TaskStatusTrigger

CONTEXT = cast("Context", {})
MODES = ["poke", "deferrable"]


class QuickCozeSensor(CozeCopyTaskSensor):
    """The shipped sensor with its 1 s poke-interval floor lowered, so the suite polls every few ms.

    Reschedule mode needs Airflow's task instance and store: ``tests/test_user_dags.py`` covers it.
    """

    min_poll_interval = 0.001


class QuickTrueWatchSensor(TrueWatchActionSensor):
    min_poll_interval = 0.001

    def _check_poke_interval(self) -> None:
        """No warning about TrueWatch's budget: the suite's emulator enforces none."""


async def first_event(trigger: TaskStatusTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def run(sensor: TaskStatusSensor, mode: str) -> Any:
    """``execute``; when it defers, run the trigger to its event and resume as the task runner does.

    ``resume_execution`` is what applies ``soft_fail`` to a deferred sensor, so it is called, not
    ``execute_complete`` directly.
    """
    sensor.deferrable = mode == "deferrable"
    try:
        return sensor.execute(CONTEXT)
    except TaskDeferred as deferred:
        assert mode == "deferrable", "poke mode never defers"
        event = asyncio.run(first_event(deferred.trigger))
        return sensor.resume_execution(deferred.method_name, {"event": event}, CONTEXT)
