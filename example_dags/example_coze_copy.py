"""Wait for a Coze copy task in the triggerer, then use the copied entity downstream.

A Coze copy (of a bot, app or workflow into another workspace) runs asynchronously: the copy call
returns a ``task_id``. ``CozeCopyTaskSensor`` waits for it to finish:

* ``deferrable=True`` — the sensor polls once, then hands the wait to the triggerer, so no worker
  slot is held while Coze copies. A copy that already finished never defers.
* The sensor's XCom return value is the API's ``data`` object (``task_id``, ``entity_type``,
  ``task_status``, ``source_entity_id``, ``target_entity_id``, ``target_workspace_id``), so a
  downstream task receives it as a plain dict argument.
* A ``failed`` copy fails the sensor without retries; the message names every failed entity with
  its reason, plus the request's ``logid``.

Try it against the local emulator (``make demo`` does it for you)::

    airflow dags test example_coze_copy
    airflow dags test example_coze_copy -c '{"copy_task_id": "demo-copy-failed"}'
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_provider_taskstatus.sensors.coze import CozeCopyTaskSensor

log = logging.getLogger(__name__)


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"copy_task_id": Param("demo-copy-success", type="string", description="Coze copy task id")},
    tags=["example", "taskstatus", "coze"],
)
def example_coze_copy() -> None:
    wait_for_copy = CozeCopyTaskSensor(
        task_id="wait_for_copy",
        copy_task_id="{{ params.copy_task_id }}",
        coze_conn_id="coze_default",
        deferrable=True,
        poke_interval=1,
        timeout=300,
    )

    @task
    def use_copied_entity(copy: dict[str, Any]) -> str:
        """Receives the sensor's XCom: the copy task's ``data``."""
        entity_id = str(copy["target_entity_id"])
        log.info(
            "Copied %s is %s in workspace %s",
            copy.get("entity_type"),
            entity_id,
            copy.get("target_workspace_id"),
        )
        return entity_id

    use_copied_entity(wait_for_copy.output)  # type: ignore[arg-type]  # resolved to the dict at run time


example_coze_copy()
