"""Operator that copies a Coze bot, app or workflow and waits for the copy."""

from __future__ import annotations

from typing import Any

from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.models.start import Started
from airflow_provider_taskstatus.operators.base import TaskStatusOperator
from airflow_provider_taskstatus.operators.links import CozeWorkspaceLink


class CozeCopyOperator(TaskStatusOperator):
    """Copies a Coze entity (``POST /v1/entities/copy_tasks``) and waits for the copy task to end.

    XCom return value: the copy task's final ``data`` (``target_entity_id``, ``target_workspace_id``,
    …); for a bot copied within its own workspace, which Coze copies at once, the call's ``data``
    (``copied_entity_id``). The copy task's id is pushed under ``remote_task_id`` as soon as it is known.

    :param entity_id: the bot, app or workflow to copy (templated).
    :param entity_type: ``bot``, ``app`` or ``workflow`` (templated).
    :param to_workspace_id: the workspace to copy into; empty: the entity's own (templated).
    :param coze_conn_id: a connection of type ``coze``.

    Other parameters: see :class:`~airflow_provider_taskstatus.operators.base.TaskStatusOperator`.
    """

    template_fields = ("entity_id", "entity_type", "to_workspace_id", "coze_conn_id")
    hook_class = CozeHook
    trigger_path = "airflow_provider_taskstatus.triggers.coze.CozeCopyTaskTrigger"
    conn_id_field = "coze_conn_id"
    start_id_key = "task_id"
    operator_extra_links = (CozeWorkspaceLink(),)

    def __init__(
        self,
        *,
        entity_id: str,
        entity_type: str,
        to_workspace_id: str | None = None,
        coze_conn_id: str = CozeHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.entity_id = entity_id
        self.entity_type = entity_type
        self.to_workspace_id = to_workspace_id
        self.coze_conn_id = coze_conn_id

    def start(self, hook: CozeHook) -> Started:
        return hook.start_copy(self.entity_id, self.entity_type, self.to_workspace_id or None)

    def links(self, hook: Any, payload: dict[str, Any] | None) -> dict[str, str]:
        workspace = self.to_workspace_id or (payload or {}).get("target_workspace_id")
        console = hook.get_endpoint().console_url
        if not (workspace and console):
            return {}
        return {CozeWorkspaceLink.xcom_key: f"{console}/space/{workspace}/develop"}
