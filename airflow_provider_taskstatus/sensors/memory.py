"""What a sensor in ``reschedule`` mode remembers from one run of its wait to the next.

Each run is a new operator object, so the poll tracker (the failure budget, the statuses already
warned about) would start afresh every time. It is kept in the task state store instead (a Variable
before Airflow 3.3: see :func:`~airflow_provider_taskstatus.compat.task_state_store`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_taskstatus.compat import rescheduled_before, task_state_store

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_taskstatus.models.outcome import PollTracker

#: The store key of a rescheduled wait's tracker.
KEY = "taskstatus_wait"


class RescheduledWait:
    """Restores ``tracker`` from this try's earlier runs; :meth:`keep` or :meth:`forget` after the poll.

    The first run of a try writes the state whatever it is, so no later run reads a missing key
    (which Airflow 3.0-3.2 log as an error); later runs read it once and write only what changed.
    A state left by an earlier try (its worker died mid-wait) is overwritten, never restored.
    """

    def __init__(self, context: Context, tracker: PollTracker) -> None:
        self.store = task_state_store(context)
        self.tracker = tracker
        self.try_number: int = context["ti"].try_number
        self.first_run = not rescheduled_before(context)
        self.stored: dict[str, Any] | None = None if self.first_run else self.store.get(KEY)
        if self.stored is not None and self.stored.get("try") == self.try_number:
            tracker.restore(self.stored["tracker"])
        self.before = None if self.first_run else tracker.snapshot()

    def keep(self) -> None:
        """The wait goes on: store the tracker if this poll changed it."""
        if (state := self.tracker.snapshot()) != self.before:
            self.store.set(KEY, {"try": self.try_number, "tracker": state})

    def forget(self) -> None:
        """The wait ended: delete what an earlier run stored."""
        if self.stored is not None:
            self.store.delete(KEY)
