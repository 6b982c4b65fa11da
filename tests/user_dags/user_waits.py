"""DAGs as a new user writes them, one per situation of issue 9, run by ``tests/test_user_dags.py``.

Each waits for the emulator task named by ``params.task_id``. ``succeeded`` runs only after a
successful wait, so the run fails when the sensor fails and succeeds when it skips.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import dag, task
from airflow.triggers.base import TriggerEvent

from airflow_provider_taskstatus.sensors.coze import CozeCopyTaskSensor
from airflow_provider_taskstatus.sensors.truewatch import TrueWatchActionSensor
from airflow_provider_taskstatus.triggers.coze import CozeCopyTaskTrigger


class TimedCozeTrigger(CozeCopyTaskTrigger):
    """Logs when its wait concluded: in deferrable mode that is the trigger's event, not the moment
    Airflow has resumed the task (which takes it a second or more in `dags test`)."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in super().run():
            self.log.info("Wait concluded at %.3f, deadline %.3f", time.time(), self.deadline)
            yield event


class TimedCozeSensor(CozeCopyTaskSensor):
    """Logs when its wait concluded (a poke raising, or its trigger's event), so that a test can
    tell how late a timeout came without counting Airflow's own work after it."""

    trigger_path = f"{__name__}.TimedCozeTrigger"

    def poke(self, context: Any) -> Any:
        try:
            return super().poke(context)
        except BaseException:
            self.log.info("Wait concluded at %.3f, deadline %.3f", time.time(), self._deadline)
            raise


#: One transient failure per poll, never a retry within one: the failure budget is what ends it.
STRICT = {"request_timeout": 2, "max_retries": 0, "max_consecutive_failures": 3}


def _user_dag(dag_id: str, make_sensor: Any) -> None:
    @dag(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        params={"task_id": "unset"},
        tags=["tests"],
    )
    def user_dag() -> None:
        @task
        def succeeded() -> str:
            return "the sensor succeeded"

        make_sensor() >> succeeded()

    user_dag()


def _coze(sensor_class: type[CozeCopyTaskSensor] = CozeCopyTaskSensor, **kwargs: Any) -> Any:
    return lambda: sensor_class(task_id="wait", copy_task_id="{{ params.task_id }}", **kwargs)


for mode in ("poke", "reschedule", "deferrable"):
    modes: dict[str, Any] = {"deferrable": True} if mode == "deferrable" else {"mode": mode}
    # A dead API (HTTP 503 at every poll): the failure budget ends the wait in every mode.
    _user_dag(f"user_dead_api_{mode}", _coze(poke_interval=1, timeout=120, **STRICT, **modes))
    # A request answered after 20 s cannot push the 5 s sensor timeout back.
    _user_dag(f"user_hanging_{mode}", _coze(TimedCozeSensor, poke_interval=1, timeout=5, **modes))
    # The remote task failed: never_fail and soft_fail skip, with the reason in the log.
    _user_dag(f"user_never_fail_{mode}", _coze(poke_interval=1, timeout=60, never_fail=True, **modes))
    _user_dag(f"user_soft_fail_{mode}", _coze(poke_interval=1, timeout=60, soft_fail=True, **modes))

# A Coze connection given to a TrueWatch sensor: refused before any request.
_user_dag(
    "user_wrong_connection",
    lambda: TrueWatchActionSensor(
        task_id="wait",
        action_task_id="{{ params.task_id }}",
        truewatch_conn_id="coze_default",
        poke_interval=3,
        timeout=30,
    ),
)
