"""E2E DAG: a deferrable Coze sensor feeding its XCom to a downstream task.

Used by tests/e2e/test_real_airflow.py; the remote task id comes from the run's conf.
``retries=1`` on the sensor lets the tests check that a remote failure or a timeout is *not* retried.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_taskstatus.sensors.coze import CozeCopyTaskSensor


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"copy_task_id": "unset"},
    tags=["e2e"],
)
def e2e_coze() -> None:
    wait = CozeCopyTaskSensor(
        task_id="wait",
        copy_task_id="{{ params.copy_task_id }}",
        deferrable=True,
        poke_interval=1,
        timeout=120,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )

    @task
    def use_copy(copy: dict[str, Any]) -> str:
        return f"copied to {copy['target_entity_id']}"

    use_copy(wait.output)  # type: ignore[arg-type]


e2e_coze()
