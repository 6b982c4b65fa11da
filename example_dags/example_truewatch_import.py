"""Wait for a TrueWatch (Guance) resource import, accepting a partial success.

An import can end ``ok`` while some resources failed (``import_info.failCount > 0``). By default
``TrueWatchActionSensor`` fails the task then, listing what failed; ``allow_partial=True`` makes
it succeed with a warning instead, so a downstream task can decide what to do with the counts.

* ``deferrable=True`` — after one poll the wait moves to the triggerer; no worker slot is held.
* The XCom return value is the API's ``content`` object; the downstream task reads
  ``import_info.successCount`` and ``import_info.failCount`` from it.

Try it against the local emulator (``make demo`` does it for you)::

    airflow dags test example_truewatch_import
    airflow dags test example_truewatch_import -c '{"action_task_id": "demo-import-ok"}'
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_provider_taskstatus.sensors.truewatch import TrueWatchActionSensor

log = logging.getLogger(__name__)


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"action_task_id": Param("demo-import-partial", type="string", description="TrueWatch taskId")},
    tags=["example", "taskstatus", "truewatch"],
)
def example_truewatch_import() -> None:
    wait_for_import = TrueWatchActionSensor(
        task_id="wait_for_import",
        action_task_id="{{ params.action_task_id }}",
        truewatch_conn_id="truewatch_default",
        allow_partial=True,
        deferrable=True,
        poke_interval=3,  # the API allows 20 calls a minute per key
        timeout=300,
    )

    @task
    def report_import(content: dict[str, Any]) -> dict[str, int]:
        """Receives the sensor's XCom: the task's ``content``."""
        info = content.get("import_info") or {}
        counts = {
            "successCount": int(info.get("successCount", 0)),
            "failCount": int(info.get("failCount", 0)),
        }
        log.info("Imported %(successCount)d resources, %(failCount)d failed", counts)
        return counts

    report_import(wait_for_import.output)  # type: ignore[arg-type]  # resolved to the dict at run time


example_truewatch_import()
