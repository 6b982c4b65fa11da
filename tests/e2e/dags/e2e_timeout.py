"""E2E DAGs: a deferred Coze sensor whose timeout runs out, hard and with ``soft_fail``.

``retries=1`` lets the tests check that a sensor timeout is *not* retried. The 30 s one outlives a
triggerer restart, to show the deadline survives it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_taskstatus.sensors.coze import CozeCopyTaskSensor


def _timeout_dag(dag_id: str, *, timeout: float, soft_fail: bool = False) -> None:
    @dag(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        params={"copy_task_id": "unset"},
        tags=["e2e"],
    )
    def timeout_dag() -> None:
        wait = CozeCopyTaskSensor(
            task_id="wait",
            copy_task_id="{{ params.copy_task_id }}",
            coze_conn_id="coze_timeout_account",  # an account no other e2e scenario rate-limits
            deferrable=True,
            poke_interval=1,
            timeout=timeout,
            soft_fail=soft_fail,
            retries=1,
            retry_delay=timedelta(seconds=1),
        )

        @task
        def after() -> str:
            return "ran"

        wait >> after()

    timeout_dag()


_timeout_dag("e2e_coze_timeout", timeout=8)
_timeout_dag("e2e_coze_timeout_soft_fail", timeout=8, soft_fail=True)
_timeout_dag("e2e_coze_timeout_30s", timeout=30)
