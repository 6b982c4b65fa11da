"""Copy a Coze workflow into another workspace and wait for it; copy a bot within its own workspace.

``CozeCopyOperator`` starts the copy (``POST /v1/entities/copy_tasks``) and waits for its copy task:

* ``copy_workflow`` — a workflow copied into another workspace is a copy task. With
  ``deferrable=True`` the operator starts it, pushes its id to XCom (key ``remote_task_id``) and
  hands the wait to the triggerer at once, so no worker slot is held while Coze copies. Its XCom
  return value is the copy task's final ``data`` (``target_entity_id``, ``target_workspace_id``,
  ``source_entity_id``…), which ``use_copies`` receives as a dict.
* ``copy_bot`` — a bot copied within its own workspace (no ``to_workspace_id``) is copied at once:
  there is no task to wait for, and the return value is the call's ``data``,
  ``{"copied_entity_id": ...}``, which ``use_copies`` receives too.
* A copy task that ends ``failed`` fails its operator without retries, naming every failed entity
  with its reason and the request's ``logid``; so does a start Coze refuses (code 4000 or 4200). A
  start that may have reached Coze unanswered (a timeout, a 5xx) fails without retries too: a copy
  may exist, and the message says where to look for it.

Try it against the local emulator (``make demo`` does it for you)::

    airflow dags test example_coze_copy_operator
    airflow dags test example_coze_copy_operator -c '{"workflow_id": "7401000000000000042", "to_workspace_id": "7498204883280400003"}'

The emulator copies anything; on a real workspace, use ids of your own. To see a copy fail, run
the emulator on its own (``taskstatus-emulator``, port 8765, with ``coze_default`` pointing at it:
see the README's Emulator section) and plan the next workflow copy's lifecycle first::

    curl -s localhost:8765/_emulator/starts -H 'Content-Type: application/json' \\
        -d '{"api": "coze", "plans": [{"match": {"entity_type": "workflow"}, "steps": [{"task_status": "failed"}]}]}'
    airflow dags test example_coze_copy_operator
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_provider_taskstatus.operators.coze import CozeCopyOperator

log = logging.getLogger(__name__)


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "workflow_id": Param("7401000000000000001", type="string", description="the workflow to copy"),
        "to_workspace_id": Param(
            "7498204883280400002", type="string", description="the workspace to copy the workflow into"
        ),
        "bot_id": Param("7402000000000000001", type="string", description="the bot to copy in place"),
    },
    tags=["example", "taskstatus", "coze"],
)
def example_coze_copy_operator() -> None:
    copy_workflow = CozeCopyOperator(
        task_id="copy_workflow",
        entity_id="{{ params.workflow_id }}",
        entity_type="workflow",
        to_workspace_id="{{ params.to_workspace_id }}",
        coze_conn_id="coze_default",
        deferrable=True,
        poll_interval=1,  # 5 s by default; 1 s keeps the emulator demo fast
        timeout=300,
    )
    # Same workspace (no to_workspace_id): Coze copies a bot at once, so there is nothing to wait for.
    copy_bot = CozeCopyOperator(
        task_id="copy_bot",
        entity_id="{{ params.bot_id }}",
        entity_type="bot",
        coze_conn_id="coze_default",
    )

    @task
    def use_copies(workflow: dict[str, Any], bot: dict[str, Any]) -> str:
        """Receives both operators' XCom: the copy task's final ``data``, and the bot copy's ``data``."""
        log.info(
            "Workflow %s was copied as %s into workspace %s; the bot's copy is %s",
            workflow["source_entity_id"],
            workflow["target_entity_id"],
            workflow["target_workspace_id"],
            bot["copied_entity_id"],
        )
        return (
            f"workflow {workflow['target_entity_id']} in workspace {workflow['target_workspace_id']}; "
            f"bot {bot['copied_entity_id']}"
        )

    use_copies(copy_workflow.output, copy_bot.output)  # type: ignore[arg-type]  # dicts at run time


example_coze_copy_operator()
