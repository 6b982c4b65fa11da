"""Trigger that waits for a TrueWatch workspace resource import or export task."""

from __future__ import annotations

from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
from airflow_provider_taskstatus.triggers.base import TaskStatusTrigger


class TrueWatchActionTrigger(TaskStatusTrigger):
    """Polls ``query_action_status`` until ``ok``, ``error`` or ``cancel``."""

    hook_class = TrueWatchHook
