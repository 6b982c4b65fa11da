"""Hook for the TrueWatch / Guance workspace resource tasks: start an export or import, read its status."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from airflow_provider_taskstatus.connection_forms import TRUEWATCH_FORM
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.models.base import TaskStatusError
from airflow_provider_taskstatus.models.start import Started, StartRequest
from airflow_provider_taskstatus.models.truewatch import TRUEWATCH

#: A resource package: a path to the zip, or its bytes.
Package = str | os.PathLike[str] | bytes


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

    def start_export(self) -> Started:
        """Export the resources of the API key's workspace; ``task_id`` is the export task."""
        return self._start(self.api.export_request())

    async def astart_export(self) -> Started:
        """Async twin of :meth:`start_export`."""
        return await self._astart(self.api.export_request())

    def start_import(
        self,
        file: Package,
        repeat_name_op: str | None = None,
        repeat_identifier_op: str | None = None,
        repeat_ops: dict[str, str] | None = None,
    ) -> Started:
        """Import a resource package (a zip, by path or as bytes) into the API key's workspace.

        :param repeat_name_op: monitors whose name exists: ``check`` (the API's default: refuse),
            ``skip``, ``recover`` or ``continue``.
        :param repeat_identifier_op: dashboards and explorers whose identifier exists: ``check``,
            ``skip`` or ``recover``.
        :param repeat_ops: other options by their API name, e.g. ``{"repeatChartNameOp": "skip"}``.
        :raises ImportConflictError: resources exist and an option says ``check``: nothing started.
        """
        return self._start(
            self._import_request(_read(file), repeat_name_op, repeat_identifier_op, repeat_ops)
        )

    async def astart_import(
        self,
        file: Package,
        repeat_name_op: str | None = None,
        repeat_identifier_op: str | None = None,
        repeat_ops: dict[str, str] | None = None,
    ) -> Started:
        """Async twin of :meth:`start_import` (the file is read in a thread)."""
        package = await asyncio.to_thread(_read, file)
        return await self._astart(
            self._import_request(package, repeat_name_op, repeat_identifier_op, repeat_ops)
        )

    def _import_request(
        self,
        package: tuple[bytes, str],
        repeat_name_op: str | None,
        repeat_identifier_op: str | None,
        repeat_ops: dict[str, str] | None,
    ) -> StartRequest:
        options = {
            "repeatNameOp": repeat_name_op,
            "repeatIdentifierOp": repeat_identifier_op,
            **(repeat_ops or {}),
        }
        data, filename = package
        return self.api.import_request(data, filename, options)


def _read(file: Package) -> tuple[bytes, str]:
    """The package's bytes and file name; a missing or unreadable file says which and why."""
    if isinstance(file, bytes):
        return file, "resources.zip"
    path = Path(file)
    try:
        return path.read_bytes(), path.name
    except OSError as error:
        raise TaskStatusError(
            f"Cannot read the TrueWatch resource package {str(path)!r}: {error.strerror or error}. "
            "Pass the path of a zip exported from a TrueWatch workspace, readable on the worker."
        ) from None
