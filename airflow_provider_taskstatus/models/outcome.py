"""The outcome table: what a classified status means for the Airflow task, in both modes.

Poke mode and the trigger both call :func:`judge`, so they cannot disagree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from airflow_provider_taskstatus.models.base import (
    ApiError,
    DeadlineError,
    ErrorKind,
    State,
    TaskStatus,
    TaskStatusError,
    shorten,
)

EventStatus = Literal["success", "failed", "error", "timeout", "execution_timeout"]
#: The closed set of trigger event statuses; ``execute_complete`` fails on anything else.
EVENT_STATUSES: frozenset[str] = frozenset(get_args(EventStatus))


class Log(Protocol):
    """The slice of a logger the tracker uses: Airflow's structlog loggers and stdlib ones fit."""

    def info(self, event: Any, *args: Any, **kw: Any) -> Any: ...
    def warning(self, event: Any, *args: Any, **kw: Any) -> Any: ...


@dataclass(frozen=True)
class Verdict:
    """``done=False`` means keep waiting; otherwise ``status`` is an event status."""

    done: bool
    status: EventStatus | None
    message: str
    #: Success that the user should hear about (partial failure accepted by ``allow_partial``).
    warning: bool = False


def judge(status: TaskStatus, *, allow_partial: bool = False) -> Verdict:
    if status.state is State.SUCCEEDED:
        return Verdict(True, "success", status.message)
    if status.state is State.PARTIAL:
        if allow_partial:
            return Verdict(True, "success", f"{status.message} (accepted: allow_partial=True)", warning=True)
        return Verdict(True, "failed", f"{status.message}; set allow_partial=True to accept this")
    if status.state in (State.FAILED, State.CANCELLED):
        return Verdict(True, "failed", status.message)
    return Verdict(False, None, status.message)


def timeout_message(api: str, task_id: str, limit: str, last: str) -> str:
    """How a wait that ran out of time says so, in poke mode and in the trigger alike."""
    return f"{api} task {shorten(task_id)!r} did not finish within the {limit}; last status: {last}"


def event(verdict: Verdict, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """A trigger event in the contract ``execute_complete`` accepts."""
    return {
        "status": verdict.status,
        "message": verdict.message,
        "payload": payload,
        "warning": verdict.warning,
    }


class PollTracker:
    """What one wait remembers between polls; shared by poke mode and the trigger.

    Counts polls that ended in a transient error (any clean poll resets the count) and warns once
    per status value the docs do not list.
    """

    # Slots and a lazy set: a triggerer holds one tracker per waiting trigger.
    __slots__ = ("_unknown_seen", "allow_partial", "consecutive_failures", "log", "max_consecutive_failures")

    def __init__(self, *, allow_partial: bool, max_consecutive_failures: int, log: Log) -> None:
        self.allow_partial = allow_partial
        self.max_consecutive_failures = max_consecutive_failures
        self.log = log
        self.consecutive_failures = 0
        self._unknown_seen: set[str] | None = None

    def snapshot(self) -> dict[str, Any]:
        """What the tracker remembers, as JSON values: a rescheduled sensor stores it between runs."""
        return {"failures": self.consecutive_failures, "warned": sorted(self._unknown_seen or ())}

    def restore(self, state: dict[str, Any]) -> None:
        self.consecutive_failures = int(state.get("failures", 0))
        self._unknown_seen = set(state.get("warned", ())) or None

    def on_status(self, status: TaskStatus) -> Verdict:
        self.consecutive_failures = 0
        if status.state is State.UNKNOWN and status.remote_status not in (self._unknown_seen or ()):
            self._unknown_seen = (self._unknown_seen or set()) | {status.remote_status}
            self.log.warning(
                "Status %r is not one the API documents; still waiting (the sensor timeout bounds this). %s",
                status.remote_status,
                status.message,
            )
        verdict = judge(status, allow_partial=self.allow_partial)
        if not verdict.done:
            self.log.info("%s", verdict.message)
        return verdict

    def on_error(self, error: TaskStatusError, *, deadline: float | None = None) -> Verdict:
        """Fatal errors end the wait at once; transient ones only after a run of failed polls.

        A transient error at the wait's ``deadline`` (epoch seconds), or a request the deadline cut
        short, counts for nothing: the deadline, not the failure budget, ends that wait. Nor does a
        rate limit: the service is up and busy, and the pacing has slowed down for it.
        """
        if not (isinstance(error, ApiError) and error.retryable):
            return Verdict(True, "error", str(error))
        if isinstance(error, DeadlineError) or (deadline is not None and time.time() >= deadline):
            return Verdict(False, None, str(error))
        if error.kind is ErrorKind.RATE_LIMITED:
            self.log.info("Rate limited (not counted as a failed poll), will poll again: %s", error)
            return Verdict(False, None, str(error))
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.max_consecutive_failures:
            return Verdict(
                True,
                "error",
                f"Gave up after {self.consecutive_failures} consecutive failed polls; last error: {error}",
            )
        self.log.warning(
            "Poll failed (%d of %d allowed in a row), will poll again: %s",
            self.consecutive_failures,
            self.max_consecutive_failures,
            error,
        )
        return Verdict(False, None, str(error))
