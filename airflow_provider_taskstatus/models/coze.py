"""Coze copy tasks: the copy call ``POST /v1/entities/copy_tasks`` and the status call
``GET /v1/entities/copy_tasks/{task_id}``.

Envelope ``{"code": 0, "msg": "", "data": {...}, "detail": {"logid": ...}}``; ``code`` decides,
whatever the HTTP status (which Coze pairs with a non-zero code is unconfirmed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_taskstatus.models.base import (
    ApiError,
    ErrorKind,
    RawResponse,
    State,
    TaskStatus,
    encode,
    envelope_error,
    header,
    id_note,
    json_object,
    kind_for_http_status,
    shorten,
    status_object,
    unusable_body_error,
    validate_task_id,
)
from airflow_provider_taskstatus.models.hosts import normalize_base_url
from airflow_provider_taskstatus.models.start import Started, StartRequest

DEFAULT_HOST = "api.coze.cn"
INTERNATIONAL_HOST = "api.coze.com"
#: The web console that goes with each public API host (for the links in a task's page).
CONSOLES = {DEFAULT_HOST: "https://www.coze.cn", INTERNATIONAL_HOST: "https://www.coze.com"}
#: Where the copy-task status call lives, under the base URL (which may carry a path prefix).
STATUS_PATH = "/v1/entities/copy_tasks"

STATES = {"in_progress": State.RUNNING, "successful": State.SUCCEEDED, "failed": State.FAILED}

#: From the official SDK's mapping. 4100 also means "token of the other region".
CODE_KINDS = {
    4000: ErrorKind.BAD_REQUEST,
    4100: ErrorKind.AUTH,
    4101: ErrorKind.AUTH,
    4200: ErrorKind.NOT_FOUND,
    4013: ErrorKind.RATE_LIMITED,
    4020: ErrorKind.RATE_LIMITED,  # requests per minute
    4008: ErrorKind.RATE_LIMITED,  # the day's quota is used up
    4009: ErrorKind.RATE_LIMITED,  # a system-wide limit
}

#: Seconds the account pauses on a rate limit that no ``Retry-After`` times: a used-up daily
#: quota or a system-wide limit does not clear within seconds, and each poll meanwhile would be
#: one more rejected request. A per-minute limit needs no pause: the pacing slows down instead.
RATE_LIMIT_PAUSES = {4008: 300.0, 4009: 60.0}

_AUTH_HINT = (
    "check the API token in the connection's password field, its permissions, and that the host "
    f"matches the token's region ({DEFAULT_HOST} for coze.cn tokens, {INTERNATIONAL_HOST} for coze.com)"
)
HINTS = {
    ErrorKind.AUTH: _AUTH_HINT,
    ErrorKind.NOT_FOUND: "check the copy task id and that the token belongs to the task's account",
}
#: The same codes answering the copy call itself.
START_HINTS = {
    ErrorKind.AUTH: _AUTH_HINT,
    ErrorKind.NOT_FOUND: "check the entity id and type, and that the token's account can see the entity",
    ErrorKind.BAD_REQUEST: "check entity_id, entity_type and to_workspace_id",
}

#: What ``POST /v1/entities/copy_tasks`` copies.
ENTITY_TYPES = ("bot", "app", "workflow")


def _text(value: Any) -> bool:
    """A usable id: Coze sends ids as strings; a number is accepted, an empty value is not."""
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip() != ""


def kind_for_code(code: int, http_status: int) -> ErrorKind:
    """Known codes first; otherwise the HTTP status, then the code family (5xxx = server side)."""
    if code in CODE_KINDS:
        return CODE_KINDS[code]
    if http_status >= 400:
        return kind_for_http_status(http_status)
    return ErrorKind.TRANSIENT if code >= 5000 else ErrorKind.BAD_REQUEST


def describe_failures(reasons: Any) -> str:
    """Every failed entity: type, name, id and reason: what a user needs to fix the copy."""
    if not isinstance(reasons, list) or not reasons:
        return "Coze reported no failed_reasons"
    parts = []
    for item in reasons:
        if not isinstance(item, Mapping):
            parts.append(str(item))
            continue
        parts.append(
            f"{item.get('entity_type', '?')} {item.get('entity_name', '')!r} "
            f"(id {item.get('entity_id', '?')}): {item.get('failed_reason', 'no reason given')}"
        )
    return "; ".join(parts)


class CozeApi:
    name = "Coze"
    request_id_label = "logid"
    #: Coze publishes no per-minute figure: unpaced until a rate limit says otherwise.
    requests_per_minute: float | None = None
    #: A connection may name an OAuth service app instead of a token (:mod:`.coze_oauth`).
    oauth = True

    def base_url(self, host: str | None, port: int | None, extra: Mapping[str, Any]) -> str:
        return normalize_base_url(host or DEFAULT_HOST, port, STATUS_PATH)

    def status_path(self, task_id: str) -> str:
        return f"{STATUS_PATH}/{encode(task_id)}"

    def console_url(self, base_url: str) -> str | None:
        """The web console of a public API host; None for any other host (say it in ``console_url``)."""
        return CONSOLES.get(urlsplit(base_url).hostname or "")

    def auth_headers(self, secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    def interpret(self, response: RawResponse, task_id: str) -> TaskStatus:
        body, logid = self._unwrap(response, HINTS)
        label = self.request_id_label
        data, remote = status_object(body, "data", "task_status", self.name, label, response, logid)
        state = STATES.get(remote, State.UNKNOWN)
        return TaskStatus(state, remote, self._message(task_id, state, remote, data, logid), data, logid)

    def copy_request(
        self, entity_id: str, entity_type: str, to_workspace_id: str | None = None
    ) -> StartRequest:
        """``POST /v1/entities/copy_tasks``; ``ValueError`` names a bad argument before anything is sent."""
        entity_id = validate_task_id(entity_id, "entity_id")
        if entity_type not in ENTITY_TYPES:
            raise ValueError(
                f"entity_type must be one of {', '.join(ENTITY_TYPES)}, got {shorten(str(entity_type))!r}."
            )
        target = validate_task_id(to_workspace_id, "to_workspace_id") if to_workspace_id else ""
        body = {"entity_id": entity_id, "entity_type": entity_type, "to_workspace_id": target}
        where = f"workspace {target}" if target else "the entity's own workspace"
        return StartRequest(
            STATUS_PATH,
            json.dumps(body).encode(),
            "application/json",
            what=f"Coze copy of {entity_type} {shorten(entity_id)!r} to {where}",
            where_to_check=f"{where} for a copy of the {entity_type}",
        )

    def interpret_start(self, response: RawResponse, request: StartRequest) -> Started:
        """A ``task_id`` to wait for, or ``copied_entity_id`` when the copy was synchronous (a bot
        copied inside its own workspace)."""
        body, logid = self._unwrap(response, START_HINTS)
        data = body.get("data")
        note = id_note(self.request_id_label, logid)
        if isinstance(data, dict) and _text(data.get("task_id")):
            task_id = str(data["task_id"])
            return Started(task_id, data, f"{request.what} started: copy task {task_id}{note}", logid)
        if isinstance(data, dict) and _text(data.get("copied_entity_id")):
            copied = data["copied_entity_id"]
            return Started(
                None, data, f"{request.what} done at once: the copy is entity {copied}{note}", logid
            )
        raise ApiError(
            ErrorKind.TRANSIENT,
            f"Coze API answered the copy call without data.task_id or data.copied_entity_id{note}",
            http_status=response.status,
            request_id=logid,
        )

    def _unwrap(
        self, response: RawResponse, hints: Mapping[ErrorKind, str]
    ) -> tuple[dict[str, Any], str | None]:
        """The envelope of a ``code == 0`` answer and its logid; any other answer as an :class:`ApiError`."""
        body = json_object(response)
        detail = body.get("detail") if body else None
        logid = (detail.get("logid") if isinstance(detail, dict) else None) or header(
            response.headers, "x-tt-logid"
        )
        code = body.get("code") if body else None
        if body is None or not isinstance(code, int) or isinstance(code, bool):
            raise unusable_body_error(self.name, response, logid, self.request_id_label)
        if code != 0:
            kind = kind_for_code(code, response.status)
            error = envelope_error(
                self.name,
                self.request_id_label,
                kind,
                str(code),
                body.get("msg"),
                hints.get(kind),
                response,
                logid,
            )
            if error.retry_after is None:
                error.retry_after = RATE_LIMIT_PAUSES.get(code)
            raise error
        return body, logid

    def _message(
        self, task_id: str, state: State, remote: str, data: dict[str, Any], logid: str | None
    ) -> str:
        what = f"Coze copy task {shorten(task_id)!r} ({data.get('entity_type', 'entity')})"
        note = id_note(self.request_id_label, logid)
        if state is State.SUCCEEDED:
            return (
                f"{what} succeeded: entity {data.get('source_entity_id', '?')} copied to "
                f"{data.get('target_entity_id', '?')} in workspace {data.get('target_workspace_id', '?')}{note}"
            )
        if state is State.FAILED:
            return f"{what} failed: {describe_failures(data.get('failed_reasons'))}{note}"
        return f"{what} is {remote}{note}"


COZE = CozeApi()
