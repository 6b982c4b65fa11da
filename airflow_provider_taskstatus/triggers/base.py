"""The polling trigger every status API shares: loop, deadline, failure budget, event contract."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.models.base import TaskStatusError
from airflow_provider_taskstatus.models.outcome import EventStatus, PollTracker, Verdict, event
from airflow_provider_taskstatus.transport.aio import shared_session
from airflow_provider_taskstatus.transport.policy import RetryPolicy

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
    ) -> None:
        super().__init__()
        self.remote_task_id = remote_task_id
        self.conn_id = conn_id
        self.deadline = deadline
        self.execution_deadline = execution_deadline
        self.poll_interval = poll_interval
        self.allow_partial = allow_partial
        self.request_policy = RetryPolicy(**(request_policy or {}))

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
            },
        )

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} remote_task_id={self.remote_task_id!r} conn_id={self.conn_id!r}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook_class(self.conn_id, request_policy=self.request_policy)
        tracker = PollTracker(
            allow_partial=self.allow_partial,
            max_consecutive_failures=self.request_policy.max_consecutive_failures,
            log=self.log,
        )
        payload: dict[str, Any] | None = None
        last = "not polled by the trigger yet"
        # Both limits are absolute and fixed: work the nearer one out once.
        deadline, ending, limit = self._next_limit()
        # Hold a lease on the loop's pooled session for the whole wait: every poll reuses it.
        async with shared_session():
            while True:
                # Wait first: the sensor polled just before deferring. A limit ends the wait
                # without one more poll, so the event arrives on time.
                pause = self.poll_interval * (1 + POLL_JITTER * (2 * random.random() - 1))
                await asyncio.sleep(max(0.0, min(pause, deadline - time.time())))
                if time.time() >= deadline:
                    message = (
                        f"{hook.api.name} task {self.remote_task_id!r} did not finish within the "
                        f"{limit}; last status: {last}"
                    )
                    yield TriggerEvent(event(Verdict(True, ending, message), payload))
                    return
                final, last, payload = await self._poll(hook, tracker, payload)
                if final is not None:
                    yield final
                    return

    async def _poll(
        self, hook: TaskStatusHook, tracker: PollTracker, payload: dict[str, Any] | None
    ) -> tuple[TriggerEvent | None, str, dict[str, Any] | None]:
        """One poll: the final event, or the status to report and the payload to keep meanwhile.

        A helper, so that nothing of the poll but a string and the payload outlives it: what
        stays referenced through the sleep gets promoted to the GC's oldest generation, and with
        thousands of waiting triggers that churn alone sets off full collections.
        """
        try:
            # Triggers polling the same task through the same account share one request per
            # interval; with the jitter below 1 - 2 x POLL_JITTER, never a trigger's own last answer.
            status = await hook.aget_task_status(
                self.remote_task_id, self.poll_interval * (1 - 2 * POLL_JITTER)
            )
        except TaskStatusError as error:
            verdict = tracker.on_error(error)
        else:
            verdict, payload = tracker.on_status(status), status.payload
        return (TriggerEvent(event(verdict, payload)) if verdict.done else None), verdict.message, payload

    def _next_limit(self) -> tuple[float, EventStatus, str]:
        """The earliest of the two deadlines, with the event status it ends in."""
        limits: list[tuple[float, EventStatus, str]] = [(self.deadline, "timeout", "sensor timeout")]
        if self.execution_deadline is not None:
            limits.append((self.execution_deadline, "execution_timeout", "execution_timeout"))
        return min(limits)
