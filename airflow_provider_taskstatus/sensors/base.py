"""The sensor every status API shares: poke, defer, and turn a verdict into a task outcome."""

from __future__ import annotations

import time
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_taskstatus.compat import deferral_timed_out, wait_started_at
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.models.base import DeadlineError, TaskStatusError, shorten, validate_task_id
from airflow_provider_taskstatus.models.outcome import PollTracker, Verdict, timeout_message
from airflow_provider_taskstatus.sensors.memory import RescheduledWait
from airflow_provider_taskstatus.transport.policy import RetryPolicy
from airflow_provider_taskstatus.waiting import RemoteTaskWait

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


#: Our timeout check runs just before Airflow's own (after a poke that is not done), and this much
#: earlier, so the timeout is ours and names the last status.
TIMEOUT_SLACK = 0.1

#: What ``soft_fail`` turns into a skip: the remote task failed, or the wait ran out of time.
SOFT_FAILURES = (AirflowFailException, AirflowSensorTimeout, AirflowTaskTimeout)


class TaskStatusSensor(RemoteTaskWait, BaseSensorOperator):
    """Waits for a remote task; subclasses name the id and connection parameters and the hook.

    Every mode ends the same way (the outcome table in the README): in ``reschedule`` mode the
    failure budget and the warnings already given survive each reschedule, in Airflow's task state
    store (a Variable per task instance before Airflow 3.3). ``soft_fail`` skips a remote failure or
    a timeout, ``never_fail`` anything, and the skip keeps the reason.

    :param allow_partial: succeed (with a warning) when the task finished but some parts failed.
    :param deferrable: wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param request_timeout: seconds one HTTP request may take (never past the sensor timeout).
    :param max_retries: retries of one request on a transient error, within a poll. A rate limit is not
        retried (the account slows down instead), nor is a deferrable sensor's first poke (its trigger
        retries, without holding a worker slot).
    :param retry_backoff: first backoff ceiling in seconds, doubling per retry (full jitter below it).
    :param max_retry_backoff: highest backoff ceiling; a ``Retry-After`` header may ask for more.
    :param max_consecutive_failures: polls in a row that may fail transiently before the task fails.
    """

    #: Attribute name of the remote task id in the subclass.
    task_id_field: ClassVar[str]
    default_poke_interval: ClassVar[float] = 5.0
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        allow_partial: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        request_timeout: float = RetryPolicy.timeout,
        max_retries: int = RetryPolicy.max_retries,
        retry_backoff: float = RetryPolicy.backoff,
        max_retry_backoff: float = RetryPolicy.max_backoff,
        max_consecutive_failures: int = RetryPolicy.max_consecutive_failures,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", self.default_poke_interval)
        super().__init__(**kwargs)
        self.allow_partial = self._boolean("allow_partial", allow_partial)
        self.deferrable = self._boolean("deferrable", deferrable)
        self._check_poke_interval()
        self.request_policy = RetryPolicy(
            timeout=request_timeout,
            max_retries=max_retries,
            backoff=retry_backoff,
            max_backoff=max_retry_backoff,
            max_consecutive_failures=max_consecutive_failures,
        )
        #: Epoch seconds the wait started (set by ``execute``); the sensor timeout counts from it.
        self._started: float | None = None
        #: The last status seen (poke mode), for the timeout message.
        self._last: str | None = None

    # -- what the subclasses declare ---------------------------------------------------------

    @property
    def remote_task_id(self) -> str:
        return validate_task_id(getattr(self, self.task_id_field), self.task_id_field)

    @cached_property
    def _poke_hook(self) -> TaskStatusHook:
        """The hook of :meth:`poke`. A deferrable sensor's one poke does not retry: a transient error or
        a rate limit defers at once, and the trigger retries without holding a worker slot (on a
        crowded account, a worker's fresh process would only add rejected requests)."""
        if not self.deferrable or self.request_policy.max_retries == 0:
            return self.hook
        return self.hook_class(self.conn_id, request_policy=replace(self.request_policy, max_retries=0))

    @cached_property
    def _tracker(self) -> PollTracker:
        return PollTracker(
            allow_partial=self.allow_partial,
            max_consecutive_failures=self.request_policy.max_consecutive_failures,
            log=self.log,
        )

    # -- the wait ----------------------------------------------------------------------------

    @property
    def _rescheduled(self) -> bool:
        """Each poll a run of its own: Airflow ignores ``mode`` for a deferrable sensor."""
        return self.reschedule and not self.deferrable

    @property
    def _deadline(self) -> float:
        """Epoch seconds the sensor timeout ends at."""
        return (self._started or time.time()) + self.timeout

    def poke(self, context: Context) -> PokeReturnValue:
        memory = RescheduledWait(context, self._tracker) if self._rescheduled else None
        cut = False
        try:
            status = self._poke_hook.get_task_status(self.remote_task_id, deadline=self._deadline)
        except TaskStatusError as error:
            verdict = self._tracker.on_error(error, deadline=self._deadline)
            payload, cut = None, isinstance(error, DeadlineError)
        else:
            verdict, payload = self._tracker.on_status(status), status.payload
        if verdict.done or time.time() >= self._deadline - TIMEOUT_SLACK:
            if memory is not None:
                memory.forget()
            if not verdict.done:
                # A poll the deadline cut short says nothing: name the one before it, if any.
                last = self._last if cut and self._last else verdict.message
                limit = f"sensor timeout ({self.timeout:g} s)"
                self._end(
                    AirflowSensorTimeout(
                        timeout_message(self.hook.api.name, self.remote_task_id, limit, last)
                    )
                )
            return PokeReturnValue(is_done=True, xcom_value=self._conclude(verdict, payload))
        self._last = verdict.message
        if memory is not None:
            memory.keep()
        return PokeReturnValue(is_done=False)

    def _check_poke_interval(self) -> None:
        self._check_interval(float(self.poke_interval), "poke_interval")

    def execute(self, context: Context) -> Any:
        started = wait_started_at(context) if self._rescheduled else None
        self._started = started.timestamp() if started is not None else time.time()
        if not self.deferrable:
            return super().execute(context)
        # A task that already ended never defers (poke applies soft_fail and never_fail itself).
        done = self.poke(context)
        if done:
            return done.xcom_value
        # What the first poke learnt (a failed poll, a warned status); most learn nothing.
        tracker = self._tracker.snapshot()
        self._defer_wait(
            self.remote_task_id,
            self._deadline,
            self.poke_interval,
            timeout_name="sensor timeout",
            tracker=tracker if any(tracker.values()) else None,
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Whoever saw the timeout (the trigger, or Airflow's own deferral timeout, the fallback when no
        triggerer ends the wait in time), it ends as a sensor timeout, on every release (2.11 reports
        Airflow's as a retryable error)."""
        if deferral_timed_out(next_method, next_kwargs):
            self._end(
                AirflowSensorTimeout(
                    f"{self.hook.api.name} task {shorten(self.remote_task_id)!r} did not finish within the sensor "
                    "timeout (Airflow ended the deferral: is a triggerer running?)"
                )
            )
        try:
            # BaseOperator's, skipping BaseSensorOperator's: that one replaces a skip's reason by
            # "Skipping due to soft_fail is set to True.", and _end has applied the flags already.
            return super(BaseSensorOperator, self).resume_execution(next_method, next_kwargs, context)
        except Exception as error:
            self._end(error)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Map a trigger event to the task outcome; anything outside the contract fails the task."""
        try:
            verdict, payload = self._event_verdict(event, self.remote_task_id)
        except TaskStatusError as error:
            self._end(error)
        return self._conclude(verdict, payload)

    # -- outcomes ----------------------------------------------------------------------------

    def _conclude(self, verdict: Verdict, payload: dict[str, Any] | None) -> Any:
        """The one place a verdict becomes an outcome, in every mode."""
        if verdict.status == "success":
            (self.log.warning if verdict.warning else self.log.info)("%s", verdict.message)
            return payload
        if verdict.status == "failed":
            self._end(AirflowFailException(verdict.message))
        if verdict.status == "timeout":
            self._end(AirflowSensorTimeout(verdict.message))
        if verdict.status == "execution_timeout":
            self._end(AirflowTaskTimeout(verdict.message))
        self._end(TaskStatusError(verdict.message))

    def _end(self, error: BaseException) -> NoReturn:
        """Raise the outcome, or a skip carrying its reason under ``soft_fail`` / ``never_fail``.

        Airflow applies the two flags too, but with a reason-less message, and not on every path
        (a deferrable sensor's first poke, 3.0's deferral timeout): deciding here makes every mode
        and release agree, and Airflow passes a skip through unchanged.
        """
        if isinstance(error, AirflowSkipException):
            raise error
        if self.soft_fail and isinstance(error, SOFT_FAILURES):
            raise AirflowSkipException(f"Skipping due to soft_fail: {error}") from error
        if self.never_fail:
            raise AirflowSkipException(f"Skipping due to never_fail: {error}") from error
        raise error
