"""E2E DAG: many deferred Coze sensors at once (a mapped task), for the triggerer-failover test.

Used by tests/e2e/test_triggerer_failover.py. The run's conf lists the remote task ids; one mapped
sensor waits for each, and the downstream task gets every sensor's XCom. ``retries=1`` lets the test
check that a wait moved to another triggerer is *not* a new try.
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
    params={"copy_task_ids": []},
    tags=["e2e"],
)
def e2e_coze_failover() -> None:
    @task
    def copy_task_ids(**context: Any) -> list[str]:
        return list(context["params"]["copy_task_ids"])

    wait = CozeCopyTaskSensor.partial(
        task_id="wait",
        deferrable=True,
        poke_interval=1,
        timeout=300,  # the test ends the waits itself, well before
        retries=1,
        retry_delay=timedelta(seconds=1),
    ).expand(copy_task_id=copy_task_ids())

    @task
    def collect(copies: list[dict[str, Any]]) -> list[str]:
        """Every sensor's XCom reached this task: the copies' target ids, in map-index order."""
        return [copy["target_entity_id"] for copy in copies]

    collect(wait.output)  # type: ignore[arg-type]


e2e_coze_failover()
