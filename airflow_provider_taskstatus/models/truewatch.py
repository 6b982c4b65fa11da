"""TrueWatch / Guance workspace resource tasks: export and import (upload) calls, and the status call
``GET /api/v1/workspace/resource/query_action_status``.

Envelope ``{"code": 200, "content": {...}, "errorCode": "", "message": "", "success": true,
"traceId": ...}``. TrueWatch answers rate limits with HTTP 401, so ``errorCode`` decides before the
HTTP status does.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_taskstatus.models.base import (
    ApiError,
    ErrorKind,
    RawResponse,
    State,
    TaskStatus,
    compact,
    encode,
    envelope_error,
    header,
    id_note,
    json_object,
    kind_for_http_status,
    shorten,
    status_object,
    unusable_body_error,
)
from airflow_provider_taskstatus.models.hosts import normalize_base_url
from airflow_provider_taskstatus.models.multipart import form_data
from airflow_provider_taskstatus.models.start import Started, StartRequest

#: Site name → OpenAPI host. Private deployments put their own host in the connection instead.
SITES: dict[str, str] = {
    "truewatch": "openapi.truewatch.com",
    "truewatch-aws": "aws-openapi.truewatch.com",
    "truewatch-us1": "us1-openapi.truewatch.com",
    "truewatch-eu1": "eu1-openapi.truewatch.com",
    "truewatch-ap1": "ap1-openapi.truewatch.com",
    "truewatch-za1": "za1-openapi.truewatch.com",
    "truewatch-id1": "id1-openapi.truewatch.com",
    "guance": "openapi.guance.com",
    "guance-aws": "aws-openapi.guance.com",
    "guance-cn3": "cn3-openapi.guance.com",
    "guance-cn4": "cn4-openapi.guance.com",
    "guance-cn5": "cn5-openapi.guance.com",
    "guance-cn6": "cn6-openapi.guance.one",
    "guance-us1": "us1-openapi.guance.com",
    "guance-eu1": "eu1-openapi.guance.one",
    "guance-ap1": "ap1-openapi.guance.one",
    "guance-za1": "za1-openapi.guance.com",
    "guance-id1": "id1-openapi.guance.com",
    "guance-me1": "me1-openapi.guance.com",
}
DEFAULT_SITE = "truewatch"
#: Where the status call lives, under the base URL (which may carry a path prefix).
STATUS_PATH = "/api/v1/workspace/resource/query_action_status"
EXPORT_PATH = "/api/v1/workspace/resource/export/task/create"
UPLOAD_PATH = "/api/v1/workspace/resource/upload"

STATES = {
    "start": State.RUNNING,
    "running": State.RUNNING,
    "ok": State.SUCCEEDED,
    "error": State.FAILED,
    "cancel": State.CANCELLED,
}

ERROR_CODE_KINDS = {
    "ft.InvalidAPIKey": ErrorKind.AUTH,
    "ft.TriggerApiAkCurrentLimiting": ErrorKind.RATE_LIMITED,
    "ft.TriggerApiWorkspaceCurrentLimiting": ErrorKind.RATE_LIMITED,
}

HINTS = {
    ErrorKind.AUTH: "check the DF-API-KEY (the key's secret, not its id) and that the site matches the workspace",
    ErrorKind.NOT_FOUND: "check the task id and that the API key belongs to the task's workspace",
}


#: The import conflict lists, what each holds, and the operator argument that resolves it.
CONFLICT_OPTIONS = {
    "repeat_name": ("monitors with the same name", "repeat_name_op to skip, recover or continue"),
    "repeat_identifier": (
        "dashboards or explorers with the same identifier",
        "repeat_identifier_op to skip or recover",
    ),
    "repeat_conflict": (
        "other resources with the same name",
        "the matching repeat_ops entry to skip or recover",
    ),
}
MONITOR_CHOICES: tuple[str, ...] = ("check", "skip", "recover", "continue")
OTHER_CHOICES = ("check", "skip", "recover")
#: The API's other conflict options: repeatChartNameOp and the like.
OTHER_OPTION = re.compile(r"repeat[A-Z]\w*NameOp")
_CHECK_TASKS = "the workspace's import and export tasks in the TrueWatch console"


def kind_for_error_code(error_code: str, http_status: int) -> ErrorKind:
    if error_code in ERROR_CODE_KINDS:
        return ERROR_CODE_KINDS[error_code]
    if error_code.endswith("CurrentLimiting"):
        return ErrorKind.RATE_LIMITED
    return kind_for_http_status(http_status) if http_status >= 400 else ErrorKind.BAD_REQUEST


def resource_failures(content: Mapping[str, Any]) -> str | None:
    """What an ``ok`` task did not manage, or ``None`` when everything made it."""
    info = content.get("import_info")
    if not isinstance(info, Mapping):
        return None
    parts = []
    fail_count = info.get("failCount")
    if isinstance(fail_count, int) and fail_count > 0:
        parts.append(f"{fail_count} resource(s) failed, {info.get('successCount', '?')} succeeded")
    if info.get("exportFailedInfo"):
        parts.append(f"export failures: {compact(info['exportFailedInfo'])}")
    return "; ".join(parts) or None


class TrueWatchApi:
    name = "TrueWatch"
    request_id_label = "traceId"
    #: Per API key (Guance's API-limit page; 200 a minute per workspace).
    requests_per_minute: float | None = 20.0
    oauth = False

    def base_url(self, host: str | None, port: int | None, extra: Mapping[str, Any]) -> str:
        site = extra.get("site") or None
        if host and site:
            raise ValueError(
                f"The connection sets both host {host!r} and site {site!r}: keep the site for a public "
                "TrueWatch/Guance site, or the host for a private deployment, not both."
            )
        if host:
            return normalize_base_url(host, port, STATUS_PATH)
        site = site or DEFAULT_SITE
        if site not in SITES:
            raise ValueError(
                f"Unknown TrueWatch site {site!r}: choose one of {', '.join(SITES)}, or set a host."
            )
        return normalize_base_url(SITES[site], port)

    def console_url(self, base_url: str) -> str | None:
        """A public site's console (``us1-openapi.truewatch.com`` → ``us1-console.truewatch.com``, by
        the sites' naming; unconfirmed per site); None for a private deployment."""
        host = urlsplit(base_url).hostname or ""
        return f"https://{host.replace('openapi', 'console', 1)}" if host in SITES.values() else None

    def status_path(self, task_id: str) -> str:
        return f"{STATUS_PATH}?taskId={encode(task_id)}"

    def auth_headers(self, secret: str) -> dict[str, str]:
        return {"DF-API-KEY": secret}

    def interpret(self, response: RawResponse, task_id: str) -> TaskStatus:
        body, trace_id = self._unwrap(response)
        label = self.request_id_label
        content, remote = status_object(body, "content", "status", self.name, label, response, trace_id)
        state = STATES.get(remote, State.UNKNOWN)
        failures = resource_failures(content) if state is State.SUCCEEDED else None
        if failures:
            state = State.PARTIAL
        what = f"TrueWatch {content.get('action') or 'resource'} task {shorten(task_id)!r}"
        note = id_note(self.request_id_label, trace_id)
        message = {
            State.SUCCEEDED: f"{what} finished ok",
            State.PARTIAL: f"{what} finished with failures: {failures}",
            State.FAILED: (
                f"{what} failed: errorCode {content.get('errorCode') or '(none)'}: "
                f"{content.get('message') or 'no message'}"
            ),
            State.CANCELLED: f"{what} was cancelled",
        }.get(state, f"{what} is {remote}")
        return TaskStatus(state, remote, message + note, content, trace_id)

    def export_request(self) -> StartRequest:
        """``POST …/export/task/create``: exports the workspace that owns the API key."""
        return StartRequest(
            EXPORT_PATH,
            what="TrueWatch export of the API key's workspace",
            where_to_check=_CHECK_TASKS,
        )

    def import_request(
        self,
        data: bytes,
        filename: str,
        options: Mapping[str, str | None] | None = None,
    ) -> StartRequest:
        """``POST …/resource/upload`` of a resource package (a zip) with its conflict options.

        ``options`` maps the API's option names (``repeatNameOp``, ``repeatIdentifierOp``, other
        ``repeat…NameOp``) to a choice; an unset (None) option is not sent, and the API checks.
        """
        what = f"TrueWatch import of {shorten(filename)!r}"
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise ValueError(
                f"{what}: the file is not a zip archive ({len(data)} bytes): pass a resource package "
                "exported from a TrueWatch workspace."
            )
        fields = {
            name: check_option(name, value) for name, value in (options or {}).items() if value is not None
        }
        body, content_type = form_data(fields, {"files": (filename, data, "application/zip")})
        return StartRequest(UPLOAD_PATH, body, content_type, what=what, where_to_check=_CHECK_TASKS)

    def interpret_start(self, response: RawResponse, request: StartRequest) -> Started:
        """``content.taskId``; an import whose resources already exist answers a conflict instead."""
        body, trace_id = self._unwrap(response)
        content = body.get("content")
        note = id_note(self.request_id_label, trace_id)
        if isinstance(content, dict):
            task_id = content.get("taskId")
            if isinstance(task_id, str | int) and not isinstance(task_id, bool) and str(task_id).strip():
                return Started(
                    str(task_id), content, f"{request.what} started: task {task_id}{note}", trace_id
                )
            conflicts = {key: content.get(key) for key in CONFLICT_OPTIONS if content.get(key)}
            if conflicts:
                raise ImportConflictError(request.what, conflicts, note, trace_id, response.status)
        raise ApiError(
            ErrorKind.TRANSIENT,
            f"TrueWatch API answered the {request.what} without content.taskId{note}",
            http_status=response.status,
            request_id=trace_id,
        )

    def _unwrap(self, response: RawResponse) -> tuple[dict[str, Any], str | None]:
        """The envelope of a successful answer and its traceId; any other answer as an :class:`ApiError`."""
        body = json_object(response)
        trace_id = (body.get("traceId") if body else None) or header(response.headers, "x-trace-id")
        if body is None or not ({"content", "errorCode", "success"} & body.keys()):
            raise unusable_body_error(self.name, response, trace_id, self.request_id_label)
        error_code = body.get("errorCode") or ""
        if error_code or body.get("success") is False or response.status >= 400:
            kind = kind_for_error_code(str(error_code), response.status)
            raise envelope_error(
                self.name,
                self.request_id_label,
                kind,
                str(error_code) or None,
                body.get("message"),
                HINTS.get(kind),
                response,
                trace_id,
            )
        return body, trace_id


def check_option(name: str, value: str) -> str:
    """An import conflict option, checked against the choices the API documents for it."""
    if name == "repeatNameOp":
        choices = MONITOR_CHOICES
    elif name == "repeatIdentifierOp" or OTHER_OPTION.fullmatch(name):
        choices = OTHER_CHOICES
    else:
        raise ValueError(
            f"Unknown TrueWatch import option {shorten(name)!r}: the API takes repeatNameOp, "
            "repeatIdentifierOp and other repeat…NameOp options (e.g. repeatChartNameOp)."
        )
    if value not in choices:
        raise ValueError(
            f"TrueWatch import option {name} must be one of {', '.join(choices)}, got {value!r}."
        )
    return value


class ImportConflictError(ApiError):
    """An import the API refused because resources already exist: no task was created.

    ``conflicts`` maps the answer's list (``repeat_name``, ``repeat_identifier``,
    ``repeat_conflict``) to the names in it; the message names the option that resolves each.
    """

    def __init__(
        self, what: str, conflicts: dict[str, Any], note: str, request_id: str | None, http_status: int
    ) -> None:
        parts = [
            f"{CONFLICT_OPTIONS[key][0]}: {compact(names, 300)} (set {CONFLICT_OPTIONS[key][1]})"
            for key, names in conflicts.items()
        ]
        super().__init__(
            ErrorKind.BAD_REQUEST,
            f"{what} not started: resources already exist in the workspace. {'; '.join(parts)}{note}",
            http_status=http_status,
            request_id=request_id,
        )
        self.conflicts = conflicts


TRUEWATCH = TrueWatchApi()
