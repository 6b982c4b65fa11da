"""E2E DAG: a Coze sensor in ``reschedule`` mode, each poll a new run of the task on a real scheduler.

The failure budget is small (3 failed polls in a row, no retry within a poll), so a dead API ends the
wait after exactly three requests if, and only if, the count survives each reschedule.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import dag

from airflow_provider_taskstatus.sensors.coze import CozeCopyTaskSensor


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"copy_task_id": "unset"},
    tags=["e2e"],
)
def e2e_coze_reschedule() -> None:
    CozeCopyTaskSensor(
        task_id="wait",
        copy_task_id="{{ params.copy_task_id }}",
        mode="reschedule",
        # Not 1 s: with 1 s, Airflow 3.3's scheduler intermittently failed the task after a poll
        # (the executor's report of one run processed after the next was queued: apache/airflow#71172).
        poke_interval=5,
        timeout=300,
        request_timeout=2,
        max_retries=0,
        max_consecutive_failures=3,
    )


e2e_coze_reschedule()
