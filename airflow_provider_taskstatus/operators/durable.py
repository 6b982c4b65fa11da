"""The started remote task's id, kept across the tries of a task instance (Airflow 3.3+).

Neither Coze nor TrueWatch takes an idempotency key or lists its tasks, so the id is the only way
a retry can find the task an earlier try started. It is written to the task state store as soon
as the start call answers, before any wait, and deleted when the wait reaches a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_taskstatus.compat import AIRFLOW_VERSION, durable_store

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_taskstatus.models.outcome import Log

#: The task state store key (one per task instance: the store is scoped to dag, run, task, map index).
STATE_KEY = "taskstatus_started"


@dataclass(frozen=True)
class StartRecord:
    task_id: str
    #: Epoch seconds of the start: the operator's ``timeout`` counts from it, across tries.
    started: float


class DurableStart:
    """The task instance's record of the remote task it started, if the release can keep one.

    A record belongs to one *series* of tries: clearing a task instance is a new intent (copy again,
    import again), not a retry, and Airflow marks it by setting ``max_tries`` anew (to the try
    number plus ``retries``), which a retry never changes. A record of another series, or of
    another connection, is ignored. The store's own retention (``[state_store]
    default_retention_days``) bounds a record a task instance never came back for.
    """

    def __init__(self, context: Context, conn_id: str, api: str, log: Log) -> None:
        self.store = durable_store(context)
        self.series = int(context["ti"].max_tries or 0)
        self.conn_id = conn_id
        self.api = api
        self.log = log

    def recall(self) -> StartRecord | None:
        """The remote task an earlier try of this series started, if any (says so once without a store)."""
        if self.store is None:
            self.log.warning(
                "Airflow %s keeps no task state (3.3+ does): if this task is retried, the retry starts a "
                "new %s task, whatever became of this try's.",
                AIRFLOW_VERSION,
                self.api,
            )
            return None
        value: Any = self.store.get(STATE_KEY)
        if not isinstance(value, dict) or not value.get("task_id"):
            return None
        if value.get("series") != self.series or value.get("conn_id") != self.conn_id:
            self.log.info(
                "%s task %s was started before this task instance was cleared (or its connection "
                "changed): this run starts a new one.",
                self.api,
                value["task_id"],
            )
            return None
        return StartRecord(str(value["task_id"]), float(value.get("started", 0.0)))

    def remember(self, record: StartRecord) -> None:
        if self.store is not None:
            value = {"task_id": record.task_id, "started": record.started}
            self.store.set(STATE_KEY, {**value, "series": self.series, "conn_id": self.conn_id})

    def forget(self) -> None:
        if self.store is not None:
            self.store.delete(STATE_KEY)
