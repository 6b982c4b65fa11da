"""A DAG a user might write: ``allow_partial="false"`` (a string, and truthy). Its parse must fail."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import dag

from airflow_provider_taskstatus.sensors.truewatch import TrueWatchActionSensor


@dag(dag_id="user_bad_allow_partial", schedule=None, start_date=datetime(2025, 1, 1), catchup=False)
def user_bad_allow_partial() -> None:
    TrueWatchActionSensor(
        task_id="wait",
        action_task_id="some-task",
        allow_partial="false",  # type: ignore[arg-type]
    )


user_bad_allow_partial()
