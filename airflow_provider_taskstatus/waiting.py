"""The Airflow side of one wait on a remote task, shared by the sensors and the operators.

Both poll through the same hook, defer to the same trigger and read its events the same way; only
what an outcome becomes differs (a sensor's ``soft_fail``, an operator's durable start).
"""

from __future__ import annotations

import importlib
import time
import warnings
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.models.base import TaskStatusError, shorten
from airflow_provider_taskstatus.models.outcome import EVENT_STATUSES, Verdict
from airflow_provider_taskstatus.transport.policy import RetryPolicy

if TYPE_CHECKING:
    from airflow_provider_taskstatus.triggers.base import TaskStatusTrigger

#: Seconds Airflow's own deferral timeout trails the trigger's deadlines.
DEFER_GRACE = 10.0


class RemoteTaskWait:
    """Mixin for a ``BaseOperator`` that waits on remote tasks of the API its hook class speaks.

    The class declares :attr:`hook_class`, :attr:`trigger_path` and :attr:`conn_id_field`; the
    instance sets ``request_policy`` and ``allow_partial``.
    """

    hook_class: ClassVar[type[TaskStatusHook]]
    #: Dotted path of the trigger class: imported only when the task defers, so that DAG files,
    #: which import operators at every parse, never load the trigger machinery.
    trigger_path: ClassVar[str]
    #: Attribute name of the connection id in the subclass.
    conn_id_field: ClassVar[str]
    #: A status API is not worth polling faster; below this a typo (0, or milliseconds taken for
    #: seconds) would flood it.
    min_poll_interval: ClassVar[float] = 1.0

    if TYPE_CHECKING:  # from BaseOperator
        task_id: str
        execution_timeout: timedelta | None
        request_policy: RetryPolicy
        allow_partial: bool

        def defer(
            self,
            *,
            trigger: Any,
            method_name: str,
            kwargs: dict[str, Any] | None = None,
            timeout: timedelta | int | float | None = None,
        ) -> NoReturn: ...

    @classmethod
    def trigger_class(cls) -> type[TaskStatusTrigger]:
        module, _, name = cls.trigger_path.rpartition(".")
        trigger_class: type[TaskStatusTrigger] = getattr(importlib.import_module(module), name)
        return trigger_class

    @property
    def conn_id(self) -> str:
        return str(getattr(self, self.conn_id_field))

    @cached_property
    def hook(self) -> TaskStatusHook:
        return self.hook_class(self.conn_id, request_policy=self.request_policy)

    # -- parse-time checks -------------------------------------------------------------------

    def _boolean(self, name: str, value: object) -> bool:
        """A string such as ``"false"`` is truthy: refuse it when the DAG is parsed, not at the outcome."""
        if not isinstance(value, bool):
            raise TypeError(
                f"{type(self).__name__} {self.task_id!r}: {name} must be True or False, "
                f"got {value!r} ({type(value).__name__})."
            )
        return value

    def _check_interval(self, interval: float, name: str) -> None:
        """Refuse an interval below :attr:`min_poll_interval`; warn when it alone breaks the API's budget."""
        if interval < self.min_poll_interval:
            raise ValueError(
                f"{type(self).__name__} {self.task_id!r}: {name}={interval:g} s is below "
                f"{self.min_poll_interval:g} s; {name} is in seconds (or a timedelta)."
            )
        budget = self.hook_class.api.requests_per_minute
        if budget and 60.0 / interval > budget:
            warnings.warn(
                f"{type(self).__name__} {self.task_id!r}: {name}={interval:g} s alone makes "
                f"{60.0 / interval:g} requests a minute, more than the {budget:g} a minute "
                f"{self.hook_class.api.name} allows per account; polls will be rate limited. Use "
                f"{name}={60.0 / budget:g} or more.",
                UserWarning,
                stacklevel=4,
            )

    # -- the deferred wait -------------------------------------------------------------------

    def _defer_wait(
        self,
        remote_task_id: str,
        deadline: float,
        poll_interval: float,
        *,
        timeout_name: str,
        tracker: dict[str, Any] | None = None,
        next_kwargs: dict[str, Any] | None = None,
    ) -> NoReturn:
        """Hand the wait to the triggerer until ``deadline`` (epoch seconds) or ``execution_timeout``;
        ``execute_complete`` gets the event and ``next_kwargs``."""
        execution_deadline = (
            time.time() + self.execution_timeout.total_seconds() if self.execution_timeout else None
        )
        nearer = min(deadline, execution_deadline or deadline) - time.time()
        self.defer(
            trigger=self.trigger_class()(
                remote_task_id=remote_task_id,
                conn_id=self.conn_id,
                deadline=deadline,
                poll_interval=poll_interval,
                allow_partial=self.allow_partial,
                request_policy=self.request_policy.to_dict(),
                execution_deadline=execution_deadline,
                tracker=tracker,
                timeout_name=timeout_name,
            ),
            method_name="execute_complete",
            kwargs=next_kwargs,
            # The trigger reports its own limits (with the last status, and telling a timeout from
            # an execution timeout); Airflow enforces them too, a little later, in case no
            # triggerer runs.
            timeout=timedelta(seconds=max(0.0, nearer) + DEFER_GRACE),
        )

    @staticmethod
    def _event_verdict(event: Any, remote_task_id: str) -> tuple[Verdict, dict[str, Any] | None]:
        """A trigger event as a verdict and payload; :class:`TaskStatusError` for anything outside the contract."""
        if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
            raise TaskStatusError(f"Unexpected trigger event for {shorten(remote_task_id)!r}: {event!r}")
        verdict = Verdict(True, event["status"], str(event.get("message")), bool(event.get("warning")))
        return verdict, event.get("payload")
