"""How tests start DAG runs and watch them: the part of a deployment that differs per release."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from tests.real_airflow.settings import E2E_DAG_IDS, HEALTH_CHECK_THRESHOLD

if TYPE_CHECKING:
    from tests.real_airflow.deployment import RealAirflow


class Driver(ABC):
    """How the tests start DAG runs and watch them: the part of a deployment that differs per release."""

    #: The processes the release needs (keys of :data:`PROCESS_COMMANDS`), in start order.
    processes: ClassVar[tuple[str, ...]]

    def __init__(self, airflow: RealAirflow) -> None:
        self.airflow = airflow

    @abstractmethod
    def not_ready(self) -> str | None:
        """What the deployment still lacks (a healthy job, a parsed DAG), or None once it is ready."""

    @abstractmethod
    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> None:
        """Create the DAG run ``run_id`` with ``conf``."""

    @abstractmethod
    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """The run's state, None while it does not exist."""

    @abstractmethod
    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """Task id → its task instance, with at least ``state`` and ``try_number``."""

    @abstractmethod
    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """The task's ``return_value`` XCom, deserialized."""

    @abstractmethod
    def mapped_task_instances(self, dag_id: str, run_id: str, task_id: str) -> dict[int, dict[str, Any]]:
        """Map index → the mapped task instance, with at least ``state``, ``try_number`` and
        ``triggerer_id`` (the job id of the triggerer its trigger is assigned to, or None)."""

    @abstractmethod
    def extra_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
        """Link name → URL (None: none yet) of the task instance, from the REST API's links endpoint."""

    @abstractmethod
    def running_triggerer_ids(self) -> set[int]:
        """The job ids of the triggerers in state ``running`` (a SIGKILLed one stays so, heartbeat stale)."""


class RestDriver(Driver):
    """Airflow 3: everything through the api-server's REST API, as a user's tooling would do it."""

    processes = ("api-server", "scheduler", "dag-processor", "triggerer")

    def not_ready(self) -> str | None:
        health = self.airflow.api("GET", "/api/v2/monitor/health")
        unhealthy = [
            part
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            if (health.get(part) or {}).get("status") != "healthy"
        ]
        dags = {d["dag_id"] for d in self.airflow.api("GET", "/api/v2/dags", params={"limit": 100})["dags"]}
        missing = sorted(set(E2E_DAG_IDS) - dags)
        return f"unhealthy: {unhealthy}, DAGs not parsed yet: {missing}" if unhealthy or missing else None

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> None:
        self.airflow.api(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": None, "conf": conf},
        )

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        return str(self.airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        found = self.airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in found["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.airflow.api("GET", path, params={"deserialize": "true", "stringify": "false"})["value"]

    def mapped_task_instances(self, dag_id: str, run_id: str, task_id: str) -> dict[int, dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/listMapped"
        found = self.airflow.api("GET", path, params={"limit": 100})["task_instances"]
        return {
            ti["map_index"]: {**ti, "triggerer_id": (ti.get("trigger") or {}).get("triggerer_id")}
            for ti in found
        }

    def extra_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"
        return dict(self.airflow.api("GET", path)["extra_links"])

    def running_triggerer_ids(self) -> set[int]:
        params = {"job_type": "TriggererJob", "job_state": "running", "limit": 100}
        return {job["id"] for job in self.airflow.api("GET", "/api/v2/jobs", params=params)["jobs"]}


class MetadataDbDriver(Driver):
    """Airflow 2.11: runs started with the CLI, watched in the SQLite metadata database.

    Each query has a connection of its own, in autocommit mode, so it never holds a lock that the
    scheduler, triggerer or a task process would wait for beyond the query itself. ``query_only``
    rather than a read-only open: a process SIGKILLed mid-transaction (the triggerer-restart test)
    leaves a hot journal that only a writable connection may roll back.
    """

    processes = ("scheduler", "triggerer")

    def _query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        db_file = self.airflow.home / "airflow.db"
        with contextlib.closing(sqlite3.connect(db_file, timeout=10, isolation_level=None)) as db:
            db.execute("PRAGMA query_only = ON")
            db.row_factory = sqlite3.Row
            return db.execute(sql, params).fetchall()

    def not_ready(self) -> str | None:
        # What the 3.x health endpoint checks: a running job of each kind with a recent heartbeat
        # (2.11 stores naive UTC timestamps, which is what julianday('now') is).
        alive = self._query(
            "SELECT DISTINCT job_type FROM job WHERE state = 'running'"
            " AND (julianday('now') - julianday(latest_heartbeat)) * 86400 < ?",
            HEALTH_CHECK_THRESHOLD,
        )
        unhealthy = sorted({"SchedulerJob", "TriggererJob"} - {row["job_type"] for row in alive})
        # Triggerable: parsed, serialized (``dags trigger`` reads that) and unpaused.
        dags = self._query(
            "SELECT dag.dag_id FROM dag JOIN serialized_dag USING (dag_id) WHERE is_active AND NOT is_paused"
        )
        missing = sorted(set(E2E_DAG_IDS) - {row["dag_id"] for row in dags})
        return f"unhealthy: {unhealthy}, DAGs not parsed yet: {missing}" if unhealthy or missing else None

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> None:
        # Keep the microseconds of the logical date: two runs of a DAG within a second must not clash.
        args = ["--run-id", run_id, "--conf", json.dumps(conf), "--no-replace-microseconds"]
        self.airflow.run_cli("dags", "trigger", dag_id, *args)

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self._query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return str(rows[0]["state"]) if rows else None

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        rows = self._query(
            "SELECT task_id, state, try_number, start_date, end_date FROM task_instance"
            " WHERE dag_id = ? AND run_id = ? AND map_index = -1",
            dag_id,
            run_id,
        )
        return {row["task_id"]: dict(row) for row in rows}

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        rows = self._query(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ?"
            " AND map_index = -1 AND key = 'return_value'",
            dag_id,
            run_id,
            task_id,
        )
        if not rows:
            raise LookupError(f"no return_value XCom for {dag_id}.{task_id} in {run_id}")
        # 2.11 stores XComs as JSON (``enable_xcom_pickling`` is off by default).
        return json.loads(rows[0]["value"])

    def mapped_task_instances(self, dag_id: str, run_id: str, task_id: str) -> dict[int, dict[str, Any]]:
        rows = self._query(
            "SELECT ti.map_index, ti.state, ti.try_number, ti.start_date, ti.end_date, trigger.triggerer_id"
            " FROM task_instance AS ti LEFT JOIN trigger ON trigger.id = ti.trigger_id"
            " WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.task_id = ? AND ti.map_index >= 0",
            dag_id,
            run_id,
            task_id,
        )
        return {row["map_index"]: dict(row) for row in rows}

    def extra_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
        # The one thing read from a webserver: links are resolved by the operator links' own code,
        # which runs in the webserver (the ``"webserver"`` process, started by the tests that ask).
        path = f"/api/v1/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"
        return dict(self.airflow.api("GET", path))

    def running_triggerer_ids(self) -> set[int]:
        rows = self._query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
        return {row["id"] for row in rows}
