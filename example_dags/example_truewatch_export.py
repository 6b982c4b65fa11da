"""Wait for a TrueWatch (Guance) resource export in the triggerer, then use its result.

``TrueWatchActionSensor`` waits for the ``taskId`` an export (or import) call returned:

* ``deferrable=True`` — after one poll the wait moves to the triggerer; no worker slot is held.
* ``start`` and ``running`` keep it waiting; ``ok`` succeeds; ``error`` and ``cancel`` fail the
  task without retries, naming the ``errorCode`` and the ``traceId``.
* The XCom return value is the API's ``content`` object (``status``, ``action``,
  ``import_info``…), which the downstream task receives as a dict.

The TrueWatch API allows about 20 calls a minute per key: keep ``poke_interval`` at its default
(10 s) or higher in production; 3 s here keeps the emulator demo fast without breaking it.

Try it against the local emulator (``make demo`` does it for you)::

    airflow dags test example_truewatch_export
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
    params={"action_task_id": Param("demo-export-ok", type="string", description="TrueWatch taskId")},
    tags=["example", "taskstatus", "truewatch"],
)
def example_truewatch_export() -> None:
    wait_for_export = TrueWatchActionSensor(
        task_id="wait_for_export",
        action_task_id="{{ params.action_task_id }}",
        truewatch_conn_id="truewatch_default",
        deferrable=True,
        poke_interval=3,  # the API allows 20 calls a minute per key
        timeout=300,
    )

    @task
    def report_export(content: dict[str, Any]) -> str:
        """Receives the sensor's XCom: the task's ``content``."""
        summary = f"{content.get('action', 'export')} {content['status']}"
        log.info("TrueWatch task finished: %s, import_info=%s", summary, content.get("import_info"))
        return summary

    report_export(wait_for_export.output)  # type: ignore[arg-type]  # resolved to the dict at run time


example_truewatch_export()
