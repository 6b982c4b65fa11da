"""A rescheduled wait's memory: restored within a try, written only when it changes, never read on a
try's first run (Airflow 3.0-3.2 log a missing Variable as an error), forgotten when the wait ends.

The same class runs against Airflow's real stores in ``tests/test_user_dags.py`` (every release) and
on a real scheduler in ``tests/e2e``; here a dict stands in for the store to count reads and writes.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, cast

from airflow.providers.common.compat.sdk import Context

from airflow_provider_taskstatus.models.base import ApiError, ErrorKind
from airflow_provider_taskstatus.models.outcome import PollTracker
from airflow_provider_taskstatus.sensors.memory import KEY, RescheduledWait


class DictStore:
    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = dict(data or {})
        self.calls: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.calls.append("get")
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.calls.append("set")
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.calls.append("delete")
        self.data.pop(key, None)


def context(store: DictStore, try_number: int = 1, reschedules: int | None = 0) -> Context:
    ctx: dict[str, Any] = {"ti": SimpleNamespace(try_number=try_number), "task_state_store": store}
    if reschedules is not None:  # Airflow 2.11's context has no count
        ctx["task_reschedule_count"] = reschedules
    return cast("Context", ctx)


def tracker() -> PollTracker:
    return PollTracker(allow_partial=False, max_consecutive_failures=5, log=logging.getLogger("test"))


FAILURE = ApiError(ErrorKind.TRANSIENT, "HTTP 503")


def test_the_first_run_of_a_try_never_reads_and_always_writes() -> None:
    store = DictStore({KEY: {"try": 0, "tracker": {"failures": 4, "warned": []}}})  # a dead try's
    t = tracker()
    wait = RescheduledWait(context(store), t)
    assert t.consecutive_failures == 0, "an earlier try's state is not restored"
    wait.keep()
    assert store.calls == ["set"]
    assert store.data[KEY] == {"try": 1, "tracker": {"failures": 0, "warned": []}}


def test_later_runs_restore_the_count_and_write_only_what_changed() -> None:
    store = DictStore({KEY: {"try": 1, "tracker": {"failures": 2, "warned": ["mystery"]}}})
    t = tracker()
    RescheduledWait(context(store, reschedules=2), t).keep()  # a poll that changed nothing
    assert (t.consecutive_failures, store.calls) == (2, ["get"])
    t = tracker()
    wait = RescheduledWait(context(store, reschedules=3), t)
    t.on_error(FAILURE)
    wait.keep()
    assert store.calls[-2:] == ["get", "set"]
    assert store.data[KEY]["tracker"] == {"failures": 3, "warned": ["mystery"]}


def test_on_airflow_2_11_every_run_reads() -> None:
    store = DictStore({KEY: {"try": 1, "tracker": {"failures": 1, "warned": []}}})
    t = tracker()
    RescheduledWait(context(store, reschedules=None), t)
    assert (t.consecutive_failures, store.calls) == (1, ["get"])


def test_the_end_of_the_wait_deletes_what_was_stored_and_nothing_else() -> None:
    store = DictStore({KEY: {"try": 1, "tracker": {"failures": 1, "warned": []}}})
    RescheduledWait(context(store, reschedules=1), tracker()).forget()
    assert KEY not in store.data
    first = DictStore()
    RescheduledWait(context(first), tracker()).forget()
    assert first.calls == [], "a wait that ended at its first poll touches no store"
