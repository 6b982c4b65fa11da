"""The sensor every status API shares: poke, defer, and turn a verdict into a task outcome."""

from __future__ import annotations

import importlib
import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_taskstatus.compat import deferral_timed_out
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.models.base import TaskStatusError, validate_task_id
from airflow_provider_taskstatus.models.outcome import EVENT_STATUSES, PollTracker, Verdict
from airflow_provider_taskstatus.transport.policy import RetryPolicy

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_taskstatus.triggers.base import TaskStatusTrigger


#: Seconds Airflow's own deferral timeout trails the trigger's deadlines.
DEFER_GRACE = 10.0


class TaskStatusSensor(BaseSensorOperator):
    """Waits for a remote task; subclasses name the id and connection parameters and the hook.

    :param allow_partial: succeed (with a warning) when the task finished but some parts failed.
    :param deferrable: wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param request_timeout: seconds one HTTP request may take.
    :param max_retries: retries of one request on a transient error or rate limit.
    :param retry_backoff: first backoff ceiling in seconds, doubling per retry (full jitter below it).
    :param max_retry_backoff: highest backoff ceiling; a ``Retry-After`` header may ask for more.
    :param max_consecutive_failures: polls in a row that may fail transiently before the task fails.
    """

    hook_class: ClassVar[type[TaskStatusHook]]
    #: Dotted path of the trigger class: imported only when the sensor defers, so that DAG files,
    #: which import sensors at every parse, never load the trigger machinery.
    trigger_path: ClassVar[str]
    #: Attribute names of the remote task id and the connection id in the subclass.
    task_id_field: ClassVar[str]
    conn_id_field: ClassVar[str]
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
        self.allow_partial = allow_partial
        self.deferrable = deferrable
        self.request_policy = RetryPolicy(
            timeout=request_timeout,
            max_retries=max_retries,
            backoff=retry_backoff,
            max_backoff=max_retry_backoff,
            max_consecutive_failures=max_consecutive_failures,
        )

    @classmethod
    def trigger_class(cls) -> type[TaskStatusTrigger]:
        module, _, name = cls.trigger_path.rpartition(".")
        trigger_class: type[TaskStatusTrigger] = getattr(importlib.import_module(module), name)
        return trigger_class

    @property
    def remote_task_id(self) -> str:
        return validate_task_id(getattr(self, self.task_id_field), self.task_id_field)

    @property
    def conn_id(self) -> str:
        return str(getattr(self, self.conn_id_field))

    @cached_property
    def hook(self) -> TaskStatusHook:
        return self.hook_class(self.conn_id, request_policy=self.request_policy)

    @cached_property
    def _tracker(self) -> PollTracker:
        return PollTracker(
            allow_partial=self.allow_partial,
            max_consecutive_failures=self.request_policy.max_consecutive_failures,
            log=self.log,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        try:
            status = self.hook.get_task_status(self.remote_task_id)
        except TaskStatusError as error:
            verdict = self._tracker.on_error(error)
            payload = None
        else:
            verdict, payload = self._tracker.on_status(status), status.payload
        if not verdict.done:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._conclude(verdict, payload))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started = time.monotonic()
        # A task that already ended never defers. BaseSensorOperator.execute is bypassed here, so
        # apply its soft_fail rule to a remote failure ourselves.
        try:
            done = self.poke(context)
        except AirflowFailException as error:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {error}") from error
            raise
        if done:
            return done.xcom_value
        elapsed = time.monotonic() - started
        remaining = max(0.0, self.timeout - elapsed)
        execution_left = self.execution_timeout.total_seconds() - elapsed if self.execution_timeout else None
        nearer = remaining if execution_left is None else min(remaining, execution_left)
        trigger_class = self.trigger_class()
        self.defer(
            trigger=trigger_class(
                remote_task_id=self.remote_task_id,
                conn_id=self.conn_id,
                deadline=time.time() + remaining,
                poll_interval=self.poke_interval,
                allow_partial=self.allow_partial,
                request_policy=self.request_policy.to_dict(),
                execution_deadline=None if execution_left is None else time.time() + execution_left,
            ),
            method_name="execute_complete",
            # The trigger reports its own limits (with the last status, and telling a sensor
            # timeout from an execution timeout); Airflow enforces them too, a little later, in
            # case no triggerer runs.
            timeout=timedelta(seconds=max(0.0, nearer) + DEFER_GRACE),
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Whoever saw the timeout (the trigger, or Airflow's own deferral timeout, the fallback when no
        triggerer ends the wait in time), it ends as a sensor timeout, skipped under ``soft_fail``, on
        every release (2.11 reports Airflow's as a retryable error, 3.0 ignores ``soft_fail`` for it)."""
        try:
            if deferral_timed_out(next_method, next_kwargs):
                raise AirflowSensorTimeout(
                    f"{self.hook.api.name} task {self.remote_task_id!r} did not finish within the sensor "
                    "timeout (Airflow ended the deferral: is a triggerer running?)"
                )
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as error:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {error}") from error
            raise

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Map a trigger event to the task outcome; anything outside the contract fails the task."""
        if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
            raise TaskStatusError(f"Unexpected trigger event for {self.remote_task_id!r}: {event!r}")
        verdict = Verdict(True, event["status"], str(event.get("message")), bool(event.get("warning")))
        return self._conclude(verdict, event.get("payload"))

    def _conclude(self, verdict: Verdict, payload: dict[str, Any] | None) -> Any:
        """The one place a verdict becomes an outcome, in both modes."""
        if verdict.status == "success":
            (self.log.warning if verdict.warning else self.log.info)("%s", verdict.message)
            return payload
        if verdict.status == "failed":
            raise AirflowFailException(verdict.message)
        if verdict.status == "timeout":
            raise AirflowSensorTimeout(verdict.message)
        if verdict.status == "execution_timeout":
            raise AirflowTaskTimeout(verdict.message)
        raise TaskStatusError(verdict.message)
