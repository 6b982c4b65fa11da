"""E2E DAG: a deferrable TrueWatch sensor feeding its XCom to a downstream task."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_taskstatus.sensors.truewatch import TrueWatchActionSensor


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"action_task_id": "unset"},
    tags=["e2e"],
)
def e2e_truewatch() -> None:
    wait = TrueWatchActionSensor(
        task_id="wait",
        action_task_id="{{ params.action_task_id }}",
        deferrable=True,
        poke_interval=1,
        timeout=120,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )

    @task
    def use_content(content: dict[str, Any]) -> str:
        return f"status {content['status']}"

    use_content(wait.output)  # type: ignore[arg-type]


e2e_truewatch()
