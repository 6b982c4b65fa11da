"""TrueWatch / Guance workspace resource task status: ``GET /api/v1/workspace/resource/query_action_status``.

Envelope ``{"code": 200, "content": {...}, "errorCode": "", "message": "", "success": true,
"traceId": ...}``. TrueWatch answers rate limits with HTTP 401, so ``errorCode`` decides before the
HTTP status does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_taskstatus.models.base import (
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

    def status_path(self, task_id: str) -> str:
        return f"{STATUS_PATH}?taskId={encode(task_id)}"

    def auth_headers(self, secret: str) -> dict[str, str]:
        return {"DF-API-KEY": secret}

    def interpret(self, response: RawResponse, task_id: str) -> TaskStatus:
        body = json_object(response)
        trace_id = (body.get("traceId") if body else None) or header(response.headers, "x-trace-id")
        if body is None or not ({"content", "errorCode", "success"} & body.keys()):
            raise unusable_body_error(self.name, response, trace_id, self.request_id_label)
        error_code = body.get("errorCode") or ""
        label = self.request_id_label
        if error_code or body.get("success") is False or response.status >= 400:
            kind = kind_for_error_code(str(error_code), response.status)
            raise envelope_error(
                self.name,
                label,
                kind,
                str(error_code) or None,
                body.get("message"),
                HINTS.get(kind),
                response,
                trace_id,
            )
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


TRUEWATCH = TrueWatchApi()
