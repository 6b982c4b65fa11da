"""Every difference between the Airflow releases we support (2.11, 3.0-3.3), in one place.

Airflow names themselves come through ``airflow.providers.common.compat``, which maps them per
release; what it does not cover is here, keyed on the release (the ``version_compat`` idea of
Airflow's own providers). Other modules only read the flags below; none catches an ImportError.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseHook, Connection, Context


_RELEASE = (*Version(AIRFLOW_VERSION).release, 0, 0)[:3]  # "3.2" reads as (3, 2, 0)

AIRFLOW_V_3_0_PLUS = _RELEASE >= (3, 0, 0)
AIRFLOW_V_3_1_PLUS = _RELEASE >= (3, 1, 0)
#: Connection forms from provider info (``conn-fields``); before it, from the hook class.
AIRFLOW_V_3_2_PLUS = _RELEASE >= (3, 2, 0)

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "TaskStateStore",
    "aget_connection",
    "amask_secret",
    "deferral_timed_out",
    "durable_store",
    "mask_secret",
    "rescheduled_before",
    "task_state_store",
    "wait_started_at",
]


#: The ``error`` Airflow resumes a task with when its deferral timed out: 2.11's text, then 3.x's
#: ``TriggerFailureReason.TRIGGER_TIMEOUT`` (a ``str`` enum).
_DEFERRAL_TIMEOUTS = ("Trigger/execution timeout", "Trigger timeout")


def deferral_timed_out(next_method: str, next_kwargs: dict[str, Any] | None) -> bool:
    """Whether Airflow resumes a task because its deferral timed out (the triggerer never ended it).

    Airflow's sensor base turns that into ``AirflowSensorTimeout`` on 3.x and into a retryable
    ``TaskDeferralError`` on 2.11; our sensor tells it apart itself, the same way on every release.
    """
    error = (next_kwargs or {}).get("error")
    return next_method == "__fail__" and getattr(error, "value", error) in _DEFERRAL_TIMEOUTS


def mask_secret(secret: str) -> None:
    """Register a secret with Airflow's masker, so no log line can show it (sync paths)."""
    from airflow.providers.common.compat.sdk import mask_secret as airflow_mask_secret

    airflow_mask_secret(secret)


async def amask_secret(secret: str) -> None:
    """:func:`mask_secret` for code on an event loop, such as a trigger.

    In Airflow 3's triggerer the synchronous call may talk to the supervisor while another trigger's
    request to it is in flight, and then raises ``DeadlockImminentError``. Airflow 3.3.2 has an
    async variant; before it, the synchronous call runs in a worker thread, where blocking is safe.
    """
    try:
        from airflow.sdk.log import amask_secret as airflow_amask_secret
    except ImportError:  # Airflow 2.11 to 3.3.1
        await asyncio.to_thread(mask_secret, secret)
    else:
        await airflow_amask_secret(secret)


async def aget_connection(hook: BaseHook, conn_id: str) -> tuple[Connection, dict[str, Any]]:
    """The connection and its extra, read without blocking the event loop, on every release.

    ``BaseHook.aget_connection`` appears in Airflow 3.1, and until 3.3.2 it (and ``extra_dejson``)
    masks secrets with a synchronous call to the supervisor; common-compat picks what is safe on the
    running release.
    """
    from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

    conn = await get_async_connection(conn_id, hook)
    return conn, await get_async_extra_dejson(conn)


class TaskStateStore(Protocol):
    """The slice of Airflow 3.3's ``context["task_state_store"]`` a wait uses: JSON values by key,
    scoped to one task instance (dag, run, task, map index) and kept across its tries."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> None: ...


def durable_store(context: Context) -> TaskStateStore | None:
    """Airflow 3.3's task state store, which keeps a value across the tries of a task instance; None
    before 3.3. No Variable stands in for it: every first try would read one that does not exist,
    which Airflow 3.0-3.2 log as an error."""
    store: TaskStateStore | None = context.get("task_state_store")  # type: ignore[assignment]
    return store


def task_state_store(context: Context) -> TaskStateStore:
    """Where a task keeps what must outlive one run of it (a sensor's wait across reschedules).

    Airflow 3.3 gives each task instance a state store; before 3.3 an Airflow Variable per task
    instance stands in for it (the one store every release lets a running task write), named so
    a person who sees it in Admin → Variables knows whose it is, and deleted when the wait ends.
    """
    store: TaskStateStore | None = context.get("task_state_store")  # type: ignore[assignment]
    return store if store is not None else _VariableStateStore(context)


class _VariableStateStore:
    def __init__(self, context: Context) -> None:
        ti = context["ti"]
        identity = json.dumps([ti.dag_id, ti.run_id, ti.task_id, ti.map_index])
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        # Variable keys are at most 250 characters: the ids go in the description, a digest in the key.
        self.prefix = f"airflow_provider_taskstatus.{ti.task_id[:120]}.{digest}."
        self.description = (
            f"Wait state of task {ti.task_id!r} in DAG {ti.dag_id!r}, run {ti.run_id!r}, kept across "
            "reschedules by airflow-provider-taskstatus; deleted when the wait ends."
        )

    def get(self, key: str, default: Any = None) -> Any:
        from airflow.providers.common.compat.sdk import Variable

        text = Variable.get(self.prefix + key, None)
        return default if text is None else json.loads(text)

    def set(self, key: str, value: Any) -> None:
        from airflow.providers.common.compat.sdk import Variable

        Variable.set(self.prefix + key, json.dumps(value), description=self.description)

    def delete(self, key: str) -> None:
        from airflow.providers.common.compat.sdk import Variable

        Variable.delete(self.prefix + key)


def rescheduled_before(context: Context) -> bool:
    """Whether this try of the task has run before and been rescheduled; Airflow 3 says so in the
    context, 2.11 does not (then: assume it has)."""
    count = context.get("task_reschedule_count")
    return count is None or bool(count)


def wait_started_at(context: Context) -> datetime | None:
    """When a rescheduled sensor's wait began, read from where Airflow's own timeout check reads it;
    ``None`` on the wait's first run."""
    ti = context["ti"]
    if AIRFLOW_V_3_0_PLUS:
        started: datetime | str | None = ti.get_first_reschedule_date(context)  # type: ignore[union-attr]
        # 3.0's `dags test` hands the date over as ISO text.
        return datetime.fromisoformat(started) if isinstance(started, str) else started
    from airflow.sensors.base import _orig_start_date  # 2.11's own helper for this very check

    first_try = (ti.max_tries or 0) - (ti.task.retries or 0) + 1
    return _orig_start_date(  # type: ignore[no-any-return]
        dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index, try_number=first_try
    )
