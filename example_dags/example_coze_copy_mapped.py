"""Copy several Coze workflows in parallel with dynamic task mapping, then summarize the copies.

``CozeCopyOperator.partial(...).expand(entity_id=[...])`` makes one mapped task instance per
workflow: each starts its own copy task (``POST /v1/entities/copy_tasks``) and, with
``deferrable=True``, waits for it in the triggerer, so waiting for many copies holds no worker slots.

* What every copy shares (``entity_type``, ``to_workspace_id``, the connection, the wait's
  settings) goes in ``partial()``; only ``entity_id`` varies. ``to_workspace_id`` is templated, so
  it can come from ``params`` even in ``partial()``.
* Each mapped instance pushes its copy task's id to XCom (key ``remote_task_id``) and returns the
  copy task's final ``data``. The downstream task receives the list of those dicts, in map-index
  order, and summarizes it: source workflow id → copied workflow id.
* A copy that fails fails only its own mapped instance (without retries); the others go on, and
  ``summarize_copies`` does not run (its upstream failed), so the run fails.

Try it against the local emulator (``make demo`` does it for you)::

    airflow dags test example_coze_copy_mapped
    airflow dags test example_coze_copy_mapped -c '{"to_workspace_id": "7498204883280400003"}'
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_provider_taskstatus.operators.coze import CozeCopyOperator

log = logging.getLogger(__name__)

#: The workflows to copy: one mapped task instance each.
WORKFLOW_IDS = ["7401000000000000011", "7401000000000000012", "7401000000000000013"]


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "to_workspace_id": Param(
            "7498204883280400002", type="string", description="the workspace to copy the workflows into"
        ),
    },
    tags=["example", "taskstatus", "coze"],
)
def example_coze_copy_mapped() -> None:
    copies = CozeCopyOperator.partial(
        task_id="copy_workflow",
        entity_type="workflow",
        to_workspace_id="{{ params.to_workspace_id }}",
        coze_conn_id="coze_default",
        deferrable=True,
        poll_interval=1,  # 5 s by default; 1 s keeps the emulator demo fast
        timeout=300,
    ).expand(entity_id=WORKFLOW_IDS)

    @task(multiple_outputs=False)  # one XCom, not one per workflow id (the dict's keys)
    def summarize_copies(copies: list[dict[str, Any]]) -> dict[str, str]:
        """Receives every mapped instance's XCom: the copy tasks' final ``data``, in map-index order."""
        results = list(copies)  # a lazy sequence on Airflow 3: read it once
        copied = {str(c["source_entity_id"]): str(c["target_entity_id"]) for c in results}
        workspaces = sorted({str(c["target_workspace_id"]) for c in results})
        log.info("Copied %d workflows into %s: %s", len(copied), ", ".join(workspaces), copied)
        return copied

    summarize_copies(copies.output)  # type: ignore[arg-type]  # resolved to the list at run time


example_coze_copy_mapped()
