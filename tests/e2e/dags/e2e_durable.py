"""E2E DAGs: a Coze copy operator whose try ends mid-wait, and the retry that follows.

Used by tests/e2e/test_durable_start.py. The entity to copy comes from the run's conf, so that each
scenario's start call takes its own emulator plan (matched on ``entity_id``). The connection
``coze_console`` is the emulator's with a ``console_url``, so the "Coze workspace" link has a URL.

* ``e2e_durable_timeout`` (waits in the worker) and ``e2e_durable_timeout_deferred`` (waits in the
  triggerer): an ``execution_timeout`` shorter than the copy task lasts ends the first try mid-wait.
* ``e2e_durable_kill``: waits in the worker, no ``execution_timeout``; the test SIGKILLs the task's
  process mid-wait.

Each has ``retries=1``: the second try must resume the copy task the first one started (Airflow 3.3's
task state store), or, before 3.3, start a new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import dag

from airflow_provider_taskstatus.operators.coze import CozeCopyOperator

#: The workspace the copies go to: the link's URL names it.
TO_WORKSPACE = "7498204"
#: Seconds a try of the timeout DAGs may run: the tests plan their copy tasks around it.
EXECUTION_TIMEOUT = 20


def _durable_dag(dag_id: str, *, deferrable: bool, execution_timeout: float | None) -> None:
    @dag(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        params={"entity_id": "unset"},
        tags=["e2e"],
    )
    def durable_dag() -> None:
        CozeCopyOperator(
            task_id="copy",
            entity_id="{{ params.entity_id }}",
            entity_type="workflow",
            to_workspace_id=TO_WORKSPACE,
            coze_conn_id="coze_console",
            deferrable=deferrable,
            poll_interval=2,
            execution_timeout=None if execution_timeout is None else timedelta(seconds=execution_timeout),
            retries=1,
            retry_delay=timedelta(seconds=1),
        )

    durable_dag()


_durable_dag("e2e_durable_timeout", deferrable=False, execution_timeout=EXECUTION_TIMEOUT)
_durable_dag("e2e_durable_timeout_deferred", deferrable=True, execution_timeout=EXECUTION_TIMEOUT)
_durable_dag("e2e_durable_kill", deferrable=False, execution_timeout=None)
