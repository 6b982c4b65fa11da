"""Hook for the TrueWatch / Guance workspace resource task status call."""

from __future__ import annotations

from airflow_provider_taskstatus.connection_forms import TRUEWATCH_FORM
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.models.truewatch import TRUEWATCH


class TrueWatchHook(TaskStatusHook):
    """TrueWatch (观测云 / Guance) OpenAPI: a workspace API key sent as ``DF-API-KEY``.

    Choose the ``site`` of the workspace in the connection extra (default ``truewatch``), or set
    the host of a private deployment instead, with its path prefix if a gateway serves it under
    one (``https://gw.example/guance``).
    """

    api = TRUEWATCH
    form = TRUEWATCH_FORM
    conn_name_attr = "truewatch_conn_id"
    default_conn_name = TRUEWATCH_FORM.default_conn_name
    conn_type = TRUEWATCH_FORM.conn_type
    hook_name = TRUEWATCH_FORM.hook_name
