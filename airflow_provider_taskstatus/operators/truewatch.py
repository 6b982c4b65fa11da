"""Operators that export or import TrueWatch (Guance) workspace resources and wait for the task."""

from __future__ import annotations

from typing import Any

from airflow_provider_taskstatus.hooks.truewatch import Package, TrueWatchHook
from airflow_provider_taskstatus.models.start import Started
from airflow_provider_taskstatus.operators.base import TaskStatusOperator
from airflow_provider_taskstatus.operators.links import TrueWatchConsoleLink


class _TrueWatchOperator(TaskStatusOperator):
    """What the export and the import share: the hook, trigger, connection and link."""

    hook_class = TrueWatchHook
    trigger_path = "airflow_provider_taskstatus.triggers.truewatch.TrueWatchActionTrigger"
    conn_id_field = "truewatch_conn_id"
    start_id_key = "taskId"
    #: The API allows 20 requests a minute per key.
    default_poll_interval = 10.0
    operator_extra_links = (TrueWatchConsoleLink(),)

    def __init__(self, *, truewatch_conn_id: str = TrueWatchHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.truewatch_conn_id = truewatch_conn_id

    def links(self, hook: Any, payload: dict[str, Any] | None) -> dict[str, str]:
        console = hook.get_endpoint().console_url
        return {TrueWatchConsoleLink.xcom_key: console} if console else {}


class TrueWatchExportOperator(_TrueWatchOperator):
    """Exports the resources of the API key's workspace and waits for the export task.

    XCom return value: the task's final ``content``; its id is pushed under ``remote_task_id`` as
    soon as it is known. An ``ok`` export that lists failures (``exportFailedInfo``) fails the task
    unless ``allow_partial=True``.

    :param truewatch_conn_id: a connection of type ``truewatch``.

    Other parameters: see :class:`~airflow_provider_taskstatus.operators.base.TaskStatusOperator`.
    """

    template_fields = ("truewatch_conn_id",)

    def start(self, hook: TrueWatchHook) -> Started:
        return hook.start_export()


class TrueWatchImportOperator(_TrueWatchOperator):
    """Imports a resource package (a zip) into the API key's workspace and waits for the import task.

    Resources that already exist make the API refuse the import (the task fails, listing them and
    the option that resolves them) unless an option says what to do with them. XCom return value:
    the task's final ``content``; an ``ok`` import with ``failCount > 0`` fails the task unless
    ``allow_partial=True``.

    :param file: path of the zip on the worker, or its bytes (templated).
    :param repeat_name_op: monitors whose name exists: ``check`` (the API's default: refuse),
        ``skip``, ``recover`` or ``continue`` (templated).
    :param repeat_identifier_op: dashboards and explorers whose identifier exists: ``check``,
        ``skip`` or ``recover`` (templated).
    :param repeat_ops: other options by their API name, e.g. ``{"repeatChartNameOp": "skip"}``.
    :param truewatch_conn_id: a connection of type ``truewatch``.

    Other parameters: see :class:`~airflow_provider_taskstatus.operators.base.TaskStatusOperator`.
    """

    template_fields = ("file", "repeat_name_op", "repeat_identifier_op", "repeat_ops", "truewatch_conn_id")

    def __init__(
        self,
        *,
        file: Package,
        repeat_name_op: str | None = None,
        repeat_identifier_op: str | None = None,
        repeat_ops: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.file = file
        self.repeat_name_op = repeat_name_op
        self.repeat_identifier_op = repeat_identifier_op
        self.repeat_ops = repeat_ops

    def start(self, hook: TrueWatchHook) -> Started:
        return hook.start_import(self.file, self.repeat_name_op, self.repeat_identifier_op, self.repeat_ops)
