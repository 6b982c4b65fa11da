"""The polling trigger every status API shares: loop, deadline, failure budget, event contract."""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.models.base import TaskStatusError, shorten
from airflow_provider_taskstatus.models.outcome import (
    EventStatus,
    PollTracker,
    Verdict,
    event,
    timeout_message,
)
from airflow_provider_taskstatus.transport import aio  # noqa: F401  aiohttp's cold import: see aio
from airflow_provider_taskstatus.transport.policy import RetryPolicy
from airflow_provider_taskstatus.triggers import wheel

#: Each pause is the poll interval ± this fraction (the mean stays the interval), so that triggers
#: which a loop stall (a GC pause, a triggerer restart) lined up do not stay in a herd.
POLL_JITTER = 0.1


class TaskStatusTrigger(BaseTrigger):
    """Polls a remote task until it ends, fails, or the deadline passes.

    Its kwargs are plain values only; the secret is read from the connection inside the triggerer.

    :param remote_task_id: the id the start call returned.
    :param conn_id: the Airflow connection to read the endpoint and secret from.
    :param deadline: absolute end of the wait (the sensor timeout), in epoch seconds, so a
        triggerer restart keeps it.
    :param execution_deadline: absolute end of the task's ``execution_timeout``, if it has one.
    :param poll_interval: seconds between polls.
    :param allow_partial: treat "finished, some parts failed" as success.
    :param request_policy: :meth:`RetryPolicy.to_dict` of the request policy.
    :param tracker: :meth:`PollTracker.snapshot` of the sensor's polls before it deferred, so
        that a failure seen by its first poke counts against the same budget.
    :param timeout_name: what the timeout at ``deadline`` is called in its message.
    """

    hook_class: ClassVar[type[TaskStatusHook]]

    def __init__(
        self,
        remote_task_id: str,
        conn_id: str,
        deadline: float,
        poll_interval: float = 5.0,
        allow_partial: bool = False,
        request_policy: dict[str, Any] | None = None,
        execution_deadline: float | None = None,
        tracker: dict[str, Any] | None = None,
        timeout_name: str = "sensor timeout",
    ) -> None:
        super().__init__()
        self.remote_task_id = remote_task_id
        self.conn_id = conn_id
        self.deadline = deadline
        self.execution_deadline = execution_deadline
        self.poll_interval = poll_interval
        self.allow_partial = allow_partial
        self.request_policy = RetryPolicy.shared(**(request_policy or {}))
        self.tracker = tracker
        self.timeout_name = timeout_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "remote_task_id": self.remote_task_id,
                "conn_id": self.conn_id,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "allow_partial": self.allow_partial,
                "request_policy": self.request_policy.to_dict(),
                "execution_deadline": self.execution_deadline,
                "tracker": self.tracker,
                "timeout_name": self.timeout_name,
            },
        )

    def __repr__(self) -> str:
        task_id = shorten(self.remote_task_id)
        return f"<{type(self).__qualname__} remote_task_id={task_id!r} conn_id={self.conn_id!r}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook_class(self.conn_id, request_policy=self.request_policy)
        wait = _Wait(self, hook)
        try:
            # The connection is read here, in the trigger's own task, as Airflow expects.
            lease = await hook.alease(self.remote_task_id)
            async with lease:
                # Wait first: the sensor polled just before deferring.
                await wait.start(wait.pause())
        except TaskStatusError as error:  # the connection is missing or unusable
            yield TriggerEvent(event(Verdict(True, "error", str(error))))
            return
        assert wait.event is not None  # the wait ends once a step has set it
        yield wait.event

    def _next_limit(self) -> tuple[float, EventStatus, str]:
        """The earliest of the two deadlines, with the event status it ends in."""
        limits: list[tuple[float, EventStatus, str]] = [(self.deadline, "timeout", self.timeout_name)]
        if self.execution_deadline is not None:
            limits.append((self.execution_deadline, "execution_timeout", "execution_timeout"))
        return min(limits)


class _Wait(PollTracker, wheel.Waiter):
    """One trigger's wait: the poll tracker, plus the deadline and the poll the wheel runs each round.

    Between rounds it holds plain values only (floats and strings), so a waiting trigger leaves
    nothing new for the cyclic GC to promote.
    """

    __slots__ = ("deadline", "ending", "event", "hook", "last", "limit", "payload", "trigger")

    def __init__(self, trigger: TaskStatusTrigger, hook: TaskStatusHook) -> None:
        super().__init__(
            allow_partial=trigger.allow_partial,
            max_consecutive_failures=trigger.request_policy.max_consecutive_failures,
            # The class's logger, not one per trigger: Airflow routes trigger logs by context.
            log=type(trigger).logger(),
        )
        if trigger.tracker:
            self.restore(trigger.tracker)
        self.trigger = trigger
        self.hook = hook
        # Both limits are absolute and fixed: work the nearer one out once.
        self.deadline, self.ending, self.limit = trigger._next_limit()
        #: The last payload, as JSON text: a string is one object the GC never scans, a decoded
        #: payload a dozen it would, promoted anew at every poll.
        self.payload: str | None = None
        self.last = "not polled by the trigger yet"
        self.event: TriggerEvent | None = None

    def pause(self) -> float:
        """The poll interval ± the jitter, cut short by the deadline."""
        pause = self.trigger.poll_interval * (1 + POLL_JITTER * (2 * random.random() - 1))
        return max(0.0, min(pause, self.deadline - time.time()))

    async def step(self) -> float | None:
        """One round: the seconds to the next, or None once :attr:`event` is set.

        A limit ends the wait without one more poll, so the event arrives on time; a poll never
        outlives it (the request is cut at the deadline).
        """
        if time.time() >= self.deadline:
            self._time_out()
            return None
        interval = self.trigger.poll_interval
        try:
            # Triggers polling the same task through the same account share one request per
            # interval; with the jitter below 1 - 2 x POLL_JITTER, never a trigger's own last answer.
            status = await self.hook.aget_task_status(
                self.trigger.remote_task_id, interval * (1 - 2 * POLL_JITTER), deadline=self.deadline
            )
        except TaskStatusError as error:
            verdict, payload = self.on_error(error, deadline=self.deadline), None
        else:
            verdict, payload = self.on_status(status), status.payload
        if verdict.done:
            self.event = TriggerEvent(
                event(verdict, payload if payload is not None else self._last_payload())
            )
            return None
        if time.time() >= self.deadline:
            self._time_out()  # before `last` changes: a poll the deadline cut short says nothing
            return None
        self.last = verdict.message
        if payload is not None:
            self.payload = json.dumps(payload)
        return self.pause()

    def _time_out(self) -> None:
        """End the wait with the limit's event, naming the last status seen."""
        message = timeout_message(self.hook.api.name, self.trigger.remote_task_id, self.limit, self.last)
        self.event = TriggerEvent(event(Verdict(True, self.ending, message), self._last_payload()))

    def _last_payload(self) -> dict[str, Any] | None:
        return None if self.payload is None else json.loads(self.payload)
