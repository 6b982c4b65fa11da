"""The operator every API shares: start a remote task, remember it, wait for it like the sensors do."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowTaskTimeout,
    BaseOperator,
    conf,
)

from airflow_provider_taskstatus.models.base import ApiError, ErrorKind, State, TaskStatus, TaskStatusError
from airflow_provider_taskstatus.models.outcome import PollTracker, Verdict, judge, timeout_message
from airflow_provider_taskstatus.models.start import Started
from airflow_provider_taskstatus.operators.durable import DurableStart, StartRecord
from airflow_provider_taskstatus.transport.policy import RetryPolicy
from airflow_provider_taskstatus.waiting import RemoteTaskWait

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_taskstatus.hooks.base import TaskStatusHook

#: The XCom key of the remote task's id, pushed as soon as the start call answers.
REMOTE_TASK_ID_KEY = "remote_task_id"

#: Start failures a retry would meet again: the try fails without Airflow's retries.
_FINAL_START_ERRORS = (ErrorKind.UNCERTAIN, ErrorKind.BAD_REQUEST, ErrorKind.NOT_FOUND)


class TaskStatusOperator(RemoteTaskWait, BaseOperator):
    """Starts a remote task, then waits for it with the sensors' trigger and outcome table.

    On Airflow 3.3+ the remote task's id goes to the task state store as soon as the start call
    answers, so a later try of the task instance (after a crash, a kill, an ``execution_timeout``, a
    failed wait) resumes that task: still running, it waits on it; finished well, it returns its
    result; failed or cancelled, it starts a new one. Clearing the task instance starts anew. Before
    3.3 a retry starts a new remote task (the log says so).

    A start call that fails after it may have reached the service (a timeout, a dropped connection,
    a 5xx) is not retried and fails the task without retries: a remote task may exist.

    :param wait_for_completion: wait for the remote task to end; ``False`` returns the start call's
        answer (holding the task id) at once.
    :param deferrable: wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: seconds (or a timedelta) between status requests.
    :param timeout: the longest wait for the remote task, counted from its start, also across
        retries; then the task fails without retries (the remote task is left running).
    :param allow_partial: succeed (with a warning) when the task finished but some parts failed.
    :param request_timeout: seconds one HTTP request may take.
    :param max_retries: retries of one status request on a transient error; of a start call, only
        on errors that provably created nothing (the connection was refused, a rate limit).
    :param retry_backoff: first backoff ceiling in seconds, doubling per retry (full jitter below it).
    :param max_retry_backoff: highest backoff ceiling; a ``Retry-After`` header may ask for more.
    :param max_consecutive_failures: polls in a row that may fail transiently before the task fails.
    """

    default_poll_interval: ClassVar[float] = 5.0
    #: The key of the task id in the start call's answer (``wait_for_completion=False``'s return value).
    start_id_key: ClassVar[str]
    ui_color = "#d2e3fc"

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta | None = None,
        timeout: float | timedelta = timedelta(days=7),
        allow_partial: bool = False,
        request_timeout: float = RetryPolicy.timeout,
        max_retries: int = RetryPolicy.max_retries,
        retry_backoff: float = RetryPolicy.backoff,
        max_retry_backoff: float = RetryPolicy.max_backoff,
        max_consecutive_failures: int = RetryPolicy.max_consecutive_failures,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_for_completion = self._boolean("wait_for_completion", wait_for_completion)
        self.deferrable = self._boolean("deferrable", deferrable)
        self.allow_partial = self._boolean("allow_partial", allow_partial)
        self.poll_interval = _seconds(
            poll_interval if poll_interval is not None else self.default_poll_interval
        )
        self.timeout = _seconds(timeout)
        self._check_poll_interval()
        self.request_policy = RetryPolicy(
            timeout=request_timeout,
            max_retries=max_retries,
            backoff=retry_backoff,
            max_backoff=max_retry_backoff,
            max_consecutive_failures=max_consecutive_failures,
        )

    def _check_poll_interval(self) -> None:
        self._check_interval(self.poll_interval, "poll_interval")

    # -- what the subclasses declare ---------------------------------------------------------

    def start(self, hook: Any) -> Started:
        """Send the start call through ``hook`` (the subclass's hook class)."""
        raise NotImplementedError

    def links(self, hook: TaskStatusHook, payload: dict[str, Any] | None) -> dict[str, str]:
        """The extra links' URLs by XCom key, from what is known now (``payload``: the final answer)."""
        return {}

    # -- execute -----------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        durable = DurableStart(context, self.conn_id, self.hook.api.name, self.log)
        record = durable.recall()
        status = self._recheck(record) if record is not None else None
        if record is not None and status is not None:
            self._publish(context, record.task_id)
            verdict = judge(status, allow_partial=self.allow_partial)
            if verdict.done:
                self.log.info(
                    "%s task %s, started by an earlier try, has ended.", self.hook.api.name, record.task_id
                )
                return self._conclude(context, verdict, status.payload)
            self.log.info(
                "Resuming %s task %s, started by an earlier try %s ago: %s",
                self.hook.api.name,
                record.task_id,
                timedelta(seconds=round(time.time() - record.started)),
                status.message,
            )
        else:
            started = self._start()
            if started.task_id is None:  # done within the call
                if record is not None:
                    durable.forget()
                self._save_links(context, started.payload)
                return started.payload
            record = StartRecord(started.task_id, time.time())
            durable.remember(record)
            self._publish(context, record.task_id)
        if not self.wait_for_completion:
            durable.forget()
            return {self.start_id_key: record.task_id}
        deadline = record.started + self.timeout
        if self.deferrable:
            self._defer_wait(
                record.task_id,
                deadline,
                self.poll_interval,
                timeout_name=self._timeout_name,
                next_kwargs={"remote_task_id": record.task_id},
            )
        verdict, payload = self._poll(record.task_id, deadline)
        return self._conclude(context, verdict, payload)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, remote_task_id: str = ""
    ) -> Any:
        """Map the trigger's event to the task outcome, as the sensors do."""
        verdict, payload = self._event_verdict(event, remote_task_id)
        return self._conclude(context, verdict, payload)

    # -- the steps ---------------------------------------------------------------------------

    def _start(self) -> Started:
        """The start call, its failures told as the README's table says."""
        try:
            started = self.start(self.hook)
        except ValueError as error:  # a bad argument: no retry would fix it
            raise AirflowFailException(f"{type(self).__name__} {self.task_id!r}: {error}") from None
        except ApiError as error:
            if error.kind in _FINAL_START_ERRORS:
                raise AirflowFailException(str(error)) from None
            raise
        self.log.info("%s", started.message)
        return started

    def _recheck(self, record: StartRecord) -> TaskStatus | None:
        """The status of the task an earlier try started; None when a new one must start instead."""
        try:
            status = self.hook.get_task_status(record.task_id)
        except ApiError as error:
            if error.kind is not ErrorKind.NOT_FOUND:
                raise  # the record stays: the next try asks again
            self.log.warning("%s; starting a new one.", error)
            return None
        if status.state in (State.FAILED, State.CANCELLED):
            self.log.warning(
                "An earlier try's task ended badly (%s): this retry starts a new one.", status.message
            )
            return None
        return status

    def _publish(self, context: Context, task_id: str) -> None:
        """The remote task id and the links, in XCom before any wait (a deferred task's page shows them)."""
        context["ti"].xcom_push(key=REMOTE_TASK_ID_KEY, value=task_id)
        self._save_links(context, None)

    def _save_links(self, context: Context, payload: dict[str, Any] | None) -> None:
        """Every link's XCom, empty while its URL is unknown: Airflow 3 reads each link when the task
        defers or ends, and logs an error for a link whose XCom does not exist."""
        urls = self.links(self.hook, payload)
        for link in self.operator_extra_links:
            key = getattr(link, "xcom_key", None)
            if key is not None:
                context["ti"].xcom_push(key=key, value=urls.get(key, ""))

    def _poll(self, task_id: str, deadline: float) -> tuple[Verdict, dict[str, Any] | None]:
        """Wait in this worker: the trigger's loop, blocking (the same tracker, verdicts and messages)."""
        tracker = PollTracker(
            allow_partial=self.allow_partial,
            max_consecutive_failures=self.request_policy.max_consecutive_failures,
            log=self.log,
        )
        last = "not polled yet"
        while True:
            time.sleep(max(0.0, min(self.poll_interval, deadline - time.time())))
            try:
                status = self.hook.get_task_status(task_id, deadline=deadline)
            except TaskStatusError as error:
                verdict, payload = tracker.on_error(error, deadline=deadline), None
            else:
                verdict, payload = tracker.on_status(status), status.payload
            if verdict.done:
                return verdict, payload
            if time.time() >= deadline:
                message = timeout_message(self.hook.api.name, task_id, self._timeout_name, last)
                return Verdict(True, "timeout", message), None
            last = verdict.message

    @property
    def _timeout_name(self) -> str:
        return f"operator timeout ({self.timeout:g} s)"

    def _conclude(self, context: Context, verdict: Verdict, payload: dict[str, Any] | None) -> Any:
        """The one place a verdict becomes the task's outcome; a verdict on the remote task ends its record."""
        if verdict.status in ("success", "failed", "timeout"):
            DurableStart(context, self.conn_id, self.hook.api.name, self.log).forget()
        if verdict.status == "success":
            (self.log.warning if verdict.warning else self.log.info)("%s", verdict.message)
            self._save_links(context, payload)
            return payload
        self._fail(verdict)

    def _fail(self, verdict: Verdict) -> NoReturn:
        if verdict.status in ("failed", "timeout"):
            # No retry: the remote task failed, or it was given the time it was allowed.
            raise AirflowFailException(verdict.message)
        if verdict.status == "execution_timeout":
            raise AirflowTaskTimeout(verdict.message)
        raise TaskStatusError(verdict.message)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
