"""Sensor that waits for a Coze copy task (bot, app or workflow copied between workspaces)."""

from __future__ import annotations

from typing import Any

from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.sensors.base import TaskStatusSensor


class CozeCopyTaskSensor(TaskStatusSensor):
    """Waits until a Coze copy task is ``successful`` (XCom: the API's ``data``) or fails.

    :param copy_task_id: the ``task_id`` the copy call returned (templated).
    :param coze_conn_id: a connection of type ``coze``.

    Other parameters: see :class:`~airflow_provider_taskstatus.sensors.base.TaskStatusSensor`.
    """

    template_fields = ("copy_task_id", "coze_conn_id")
    hook_class = CozeHook
    trigger_path = "airflow_provider_taskstatus.triggers.coze.CozeCopyTaskTrigger"
    task_id_field = "copy_task_id"
    conn_id_field = "coze_conn_id"

    def __init__(
        self, *, copy_task_id: str, coze_conn_id: str = CozeHook.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.copy_task_id = copy_task_id
        self.coze_conn_id = coze_conn_id
