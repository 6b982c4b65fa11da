"""Trigger that waits for a Coze copy task."""

from __future__ import annotations

from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.triggers.base import TaskStatusTrigger


class CozeCopyTaskTrigger(TaskStatusTrigger):
    """Polls ``GET /v1/entities/copy_tasks/{task_id}`` until ``successful`` or ``failed``."""

    hook_class = CozeHook
