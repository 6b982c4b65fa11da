"""Hook for the Coze OpenAPI copy-task status call."""

from __future__ import annotations

from airflow_provider_taskstatus.connection_forms import COZE_FORM
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.models.coze import COZE


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
