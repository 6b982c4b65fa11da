"""Pure protocol logic: parse a status response and classify it. No I/O here.

Each API is one :class:`~airflow_provider_taskstatus.models.base.StatusApi` instance; the shared
machinery (transport, hooks, triggers, sensors) only ever talks to that interface.
"""

from airflow_provider_taskstatus.models.base import (
    ApiError,
    DeadlineError,
    ErrorKind,
    RawResponse,
    State,
    StatusApi,
    TaskStatus,
    TaskStatusError,
)

__all__ = [
    "ApiError",
    "DeadlineError",
    "ErrorKind",
    "RawResponse",
    "State",
    "StatusApi",
    "TaskStatus",
    "TaskStatusError",
]
