"""Sensor that waits for a TrueWatch (Guance) workspace resource import or export task."""

from __future__ import annotations

from typing import Any

from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
from airflow_provider_taskstatus.sensors.base import TaskStatusSensor


class TrueWatchActionSensor(TaskStatusSensor):
    """Waits until a TrueWatch import/export task is ``ok`` (XCom: the API's ``content``) or fails.

    An ``ok`` task that reports failed resources (``failCount > 0``, ``exportFailedInfo``) fails the
    sensor unless ``allow_partial=True``. The default poke interval is 10 s: the API allows only
    20 calls a minute per key, and a ``poke_interval`` below 3 s warns when the DAG is parsed.

    :param action_task_id: the ``taskId`` the export or import call returned (templated).
    :param truewatch_conn_id: a connection of type ``truewatch``.

    Other parameters: see :class:`~airflow_provider_taskstatus.sensors.base.TaskStatusSensor`.
    """

    template_fields = ("action_task_id", "truewatch_conn_id")
    hook_class = TrueWatchHook
    trigger_path = "airflow_provider_taskstatus.triggers.truewatch.TrueWatchActionTrigger"
    task_id_field = "action_task_id"
    conn_id_field = "truewatch_conn_id"
    default_poke_interval = 10.0

    def __init__(
        self,
        *,
        action_task_id: str,
        truewatch_conn_id: str = TrueWatchHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action_task_id = action_task_id
        self.truewatch_conn_id = truewatch_conn_id
