"""Run the operators' ``execute`` as the task runner does, with a task instance and state store of our own.

The real ones are Airflow's: ``tests/test_user_dags.py`` and the end-to-end tests run the operators
through ``airflow dags test`` and real processes. Here the stand-ins keep what a try leaves behind
(XComs, the state store), so a test can play a second try, or a cleared task instance, after it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_taskstatus.operators.base import TaskStatusOperator
from airflow_provider_taskstatus.operators.coze import CozeCopyOperator
from airflow_provider_taskstatus.operators.truewatch import TrueWatchExportOperator, TrueWatchImportOperator
from tests.sensor_runner import first_event

MODES = ["poke", "deferrable"]


class QuickCozeCopy(CozeCopyOperator):
    """The shipped operator with its 1 s poll-interval floor lowered, so the suite polls every few ms."""

    min_poll_interval = 0.001


class QuickExport(TrueWatchExportOperator):
    min_poll_interval = 0.001

    def _check_poll_interval(self) -> None:
        """No warning about TrueWatch's budget: the suite's emulator enforces none."""


class QuickImport(TrueWatchImportOperator):
    min_poll_interval = 0.001

    def _check_poll_interval(self) -> None:
        """No warning about TrueWatch's budget: the suite's emulator enforces none."""


class StateStore(dict[str, Any]):
    """Airflow 3.3's task state store, as far as the operators use it: JSON values, kept across tries."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


@dataclass
class TaskInstance:
    """What the operators read from ``context["ti"]``; ``max_tries`` changes when a task is cleared."""

    max_tries: int = 0
    map_index: int = -1
    xcom: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@dataclass
class Instance:
    """One task instance across its tries: its task state store (None: a release without one)."""

    store: StateStore | None = field(default_factory=StateStore)
    ti: TaskInstance = field(default_factory=TaskInstance)

    def context(self) -> Any:
        """A fresh try's context: XCom is cleared when a try starts, the state store is not."""
        self.ti.xcom = {}
        context: dict[str, Any] = {"ti": self.ti}
        if self.store is not None:
            context["task_state_store"] = self.store
        return cast(Any, context)

    def clear(self) -> None:
        """What clearing the task instance does: Airflow sets max_tries anew."""
        self.ti.max_tries += 1


def run(operator: TaskStatusOperator, instance: Instance, mode: str) -> Any:
    """One try: ``execute``; when it defers, the trigger to its event, then ``resume_execution``."""
    operator.deferrable = mode == "deferrable"
    context = instance.context()
    try:
        return operator.execute(context)
    except TaskDeferred as deferred:
        assert mode == "deferrable", "poke mode never defers"
        event = asyncio.run(first_event(deferred.trigger))
        kwargs = {**(deferred.kwargs or {}), "event": event}
        return operator.resume_execution(deferred.method_name, kwargs, context)


__all__ = [
    "MODES",
    "Instance",
    "QuickCozeCopy",
    "QuickExport",
    "QuickImport",
    "StateStore",
    "TaskInstance",
    "run",
]
