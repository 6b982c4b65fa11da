"""Hook for the Coze OpenAPI copy tasks: start a copy, read its status."""

from __future__ import annotations

from airflow_provider_taskstatus.connection_forms import COZE_FORM
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.models.coze import COZE
from airflow_provider_taskstatus.models.start import Started


class CozeHook(TaskStatusHook):
    """Coze (扣子) OpenAPI: a personal, service or OAuth access token, sent as ``Bearer``.

    The host defaults to ``api.coze.cn``; set ``api.coze.com`` for coze.com tokens, or any host,
    with a path prefix if a gateway serves the API under one (``http://127.0.0.1:8765`` for the
    local emulator, ``https://gw.example/coze`` behind a gateway).
    """

    api = COZE
    form = COZE_FORM
    conn_name_attr = "coze_conn_id"
    default_conn_name = COZE_FORM.default_conn_name
    conn_type = COZE_FORM.conn_type
    hook_name = COZE_FORM.hook_name

    def start_copy(self, entity_id: str, entity_type: str, to_workspace_id: str | None = None) -> Started:
        """Copy a bot, app or workflow (``POST /v1/entities/copy_tasks``).

        :return: ``task_id`` set for an asynchronous copy (apps, workflows, any copy to another
            workspace), to wait on; ``None`` for a bot copied within its workspace, which is done:
            ``payload["copied_entity_id"]`` is the copy.
        :raises ApiError: kind ``UNCERTAIN`` when the call failed after it may have created a copy.
        """
        return self._start(self.api.copy_request(entity_id, entity_type, to_workspace_id))

    async def astart_copy(
        self, entity_id: str, entity_type: str, to_workspace_id: str | None = None
    ) -> Started:
        """Async twin of :meth:`start_copy`."""
        return await self._astart(self.api.copy_request(entity_id, entity_type, to_workspace_id))
