"""The polling trigger every status API shares: loop, deadline, failure budget, event contract."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.models.base import TaskStatusError
from airflow_provider_taskstatus.models.outcome import EventStatus, PollTracker, Verdict, event
from airflow_provider_taskstatus.transport.aio import shared_session
from airflow_provider_taskstatus.transport.policy import RetryPolicy


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
        # Hold a lease on the loop's pooled session for the whole wait: every poll reuses it.
        async with shared_session():
            while True:
                # Wait first: the sensor polled just before deferring. A limit ends the wait
                # without one more poll, so the event arrives on time.
                deadline, ending, limit = self._next_limit()
                await asyncio.sleep(max(0.0, min(self.poll_interval, deadline - time.time())))
                if time.time() >= deadline:
                    message = (
                        f"{hook.api.name} task {self.remote_task_id!r} did not finish within the "
                        f"{limit}; last status: {last}"
                    )
                    yield TriggerEvent(event(Verdict(True, ending, message), payload))
                    return
                try:
                    # Triggers polling the same task through the same account share one
                    # request per interval; a trigger never reuses its own previous answer.
                    status = await hook.aget_task_status(self.remote_task_id, self.poll_interval * 0.9)
                except TaskStatusError as error:
                    verdict = tracker.on_error(error)
                else:
                    verdict, payload = tracker.on_status(status), status.payload
                if verdict.done:
                    yield TriggerEvent(event(verdict, payload))
                    return
                last = verdict.message

    def _next_limit(self) -> tuple[float, EventStatus, str]:
        """The earliest of the two deadlines, with the event status it ends in."""
        limits: list[tuple[float, EventStatus, str]] = [(self.deadline, "timeout", "sensor timeout")]
        if self.execution_deadline is not None:
            limits.append((self.execution_deadline, "execution_timeout", "execution_timeout"))
        return min(limits)
