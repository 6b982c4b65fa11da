"""Back up a TrueWatch (Guance) workspace with an export, then import a resource package into it.

Both operators start a task (``TrueWatchExportOperator``: ``POST …/export/task/create``;
``TrueWatchImportOperator``: a multipart ``POST …/resource/upload`` of the zip), push its ``taskId``
to XCom (key ``remote_task_id``) and, with ``deferrable=True``, wait for it in the triggerer. Their
XCom return value is the task's final ``content``, which ``report`` receives as dicts.

* ``export_workspace`` — the export of the API key's workspace: a backup taken before the import
  changes it.
* ``write_package`` — where the zip comes from. In real use it is a file an export produced (in
  another workspace, say), somewhere the worker can read. This example is self-contained: it
  writes a package in the emulator's format (``resource_zip``) to a temporary file and returns the
  path, which reaches the import's templated ``file`` through XCom. ``remove_package`` deletes the
  file afterwards, whatever happened.
* ``import_resources`` — the package holds a monitor and a dashboard the workspace already has
  ("CPU usage high", "Host overview") and two it has not. TrueWatch refuses an import that meets
  existing resources unless an option says what to do with them: ``repeat_name_op`` for monitors
  (``check``: refuse; ``skip``; ``recover``: overwrite; ``continue``: import a second one) and
  ``repeat_identifier_op`` for dashboards and explorers (``check``, ``skip``, ``recover``). Here they
  come from ``params``: ``skip`` and ``recover`` by default, so 3 of the 4 resources are imported.
  With ``check``, the import starts nothing and the task fails at once, without retries, listing the
  resources that exist and the option that resolves them; ``report`` does not run and the run fails.
* An ``ok`` task that lists failed resources fails its operator unless ``allow_partial=True``.

The TrueWatch API allows about 20 calls a minute per key: keep ``poll_interval`` at its default
(10 s) or higher in production; 3 s here keeps the emulator demo fast without breaking it.

Try it against the local emulator (``make demo`` does it for you)::

    airflow dags test example_truewatch_export_import
    airflow dags test example_truewatch_export_import -c '{"repeat_name_op": "recover"}'
    airflow dags test example_truewatch_export_import -c '{"repeat_name_op": "check"}'   # fails: a conflict
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_provider_taskstatus.operators.truewatch import TrueWatchExportOperator, TrueWatchImportOperator

log = logging.getLogger(__name__)

#: The package's resources by kind: the seeded emulator workspace already has the first of each.
PACKAGE = {
    "monitor": ["CPU usage high", "Disk almost full"],
    "dashboard": ["Host overview", "Checkout latency"],
}


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "repeat_name_op": Param(
            "skip",
            enum=["check", "skip", "recover", "continue"],
            description="monitors whose name exists: check (refuse), skip, recover (overwrite), continue",
        ),
        "repeat_identifier_op": Param(
            "recover",
            enum=["check", "skip", "recover"],
            description="dashboards and explorers whose identifier exists: check (refuse), skip, recover",
        ),
    },
    tags=["example", "taskstatus", "truewatch"],
)
def example_truewatch_export_import() -> None:
    export_workspace = TrueWatchExportOperator(
        task_id="export_workspace",
        truewatch_conn_id="truewatch_default",
        deferrable=True,
        poll_interval=3,  # the API allows 20 calls a minute per key
        timeout=300,
    )

    @task
    def write_package() -> str:
        """Stands in for an export's file: a resource package written where the worker can read it."""
        from airflow_provider_taskstatus.emulator.packages import resource_zip

        fd, path = tempfile.mkstemp(prefix="truewatch-resources-", suffix=".zip")
        with os.fdopen(fd, "wb") as package:
            package.write(resource_zip(PACKAGE))
        log.info("Wrote a resource package to %s: %s", path, PACKAGE)
        return path

    package_path = write_package()
    import_resources = TrueWatchImportOperator(
        task_id="import_resources",
        file=package_path,  # type: ignore[arg-type]  # templated: the path, pulled from XCom at run time
        repeat_name_op="{{ params.repeat_name_op }}",
        repeat_identifier_op="{{ params.repeat_identifier_op }}",
        truewatch_conn_id="truewatch_default",
        deferrable=True,
        poll_interval=3,
        timeout=300,
    )
    export_workspace >> import_resources

    @task
    def report(export: dict[str, Any], imported: dict[str, Any]) -> dict[str, Any]:
        """Receives both operators' XCom: each task's final ``content``."""
        info = imported.get("import_info") or {}
        summary = {
            "export": export["status"],
            "import": imported["status"],
            "successCount": int(info.get("successCount", 0)),
            "failCount": int(info.get("failCount", 0)),
        }
        log.info("Backed up the workspace (%(export)s), then imported %(successCount)d resources", summary)
        return summary

    @task(trigger_rule="all_done")
    def remove_package(path: str) -> None:
        """Deletes the temporary package, whether the import succeeded or not."""
        os.remove(path)

    report(export_workspace.output, import_resources.output)  # type: ignore[arg-type]
    import_resources >> remove_package(package_path)  # type: ignore[arg-type]


example_truewatch_export_import()
