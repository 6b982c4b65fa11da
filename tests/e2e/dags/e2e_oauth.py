"""E2E DAG: many Coze waits through one production-style connection (OAuth service app, private CA,
proxy with credentials), deferred and in poke mode.

Used by tests/e2e/test_production_connection.py, which defines the connection ``coze_production``
(``AIRFLOW_CONN_COZE_PRODUCTION``) and scripts a copy task per sensor in the emulator. Every other
E2E deployment parses this file too, without that connection: nothing here reads it at parse time.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import dag

from airflow_provider_taskstatus.sensors.coze import CozeCopyTaskSensor

DAG_ID = "e2e_coze_oauth"
CONN_ID = "coze_production"
#: Deferrable sensors: each waits on a copy task of its own, in the triggerer after its first poke.
DEFERRED = 20
DEFERRED_TASKS = {f"deferred_{i:02d}": f"e2e-oauth-copy-{i:02d}" for i in range(DEFERRED)}
#: The poke-mode sensor (it holds a worker slot and polls from its task process) and its copy task.
POKED_TASK, POKED_COPY = "poked", "e2e-oauth-copy-poked"
POKE_INTERVAL = 2
#: Far above the copy tasks' minute: a wait ends by success, not by a timeout.
TIMEOUT = 300


@dag(dag_id=DAG_ID, schedule=None, start_date=datetime(2025, 1, 1), catchup=False, tags=["e2e"])
def e2e_coze_oauth() -> None:
    for task_id, copy_id in DEFERRED_TASKS.items():
        CozeCopyTaskSensor(
            task_id=task_id,
            copy_task_id=copy_id,
            coze_conn_id=CONN_ID,
            deferrable=True,
            poke_interval=POKE_INTERVAL,
            timeout=TIMEOUT,
        )
    CozeCopyTaskSensor(
        task_id=POKED_TASK,
        copy_task_id=POKED_COPY,
        coze_conn_id=CONN_ID,
        mode="poke",
        deferrable=False,
        poke_interval=POKE_INTERVAL,
        timeout=TIMEOUT,
        priority_weight=100,  # queued first: its minute of polling overlaps the triggerer's
    )


e2e_coze_oauth()
