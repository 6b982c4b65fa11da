"""The emulator's aiohttp application: both status APIs plus the ``/_emulator`` control endpoints.

Coze and TrueWatch paths do not overlap, so one server serves both. It also answers two stand-ins
the benchmark (``benchmarks/``) polls with the peers' triggers: dbt Cloud's run-status path and a
plain URL for Airflow's ``HttpSensorTrigger``; each answers "running" until its id is *flipped*.
State lives in :mod:`.state`; the control endpoints in :mod:`.control`; request budgets in
:mod:`.limits` (checked after authentication and before the task lookup, so a refused request
consumes no step).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict

from .control import add_control_routes
from .scripts import CONTROL_KEYS, COZE, TRUEWATCH, Step, entity_ids
from .state import DBT_CLOUD, FLIP_APIS, HTTP, STATE, EmulatorState

__all__ = ["FLIP_APIS", "STATE", "EmulatorState", "create_app"]

COZE_PREFIX = "/v1/entities/copy_tasks/"
TRUEWATCH_PATH = "/api/v1/workspace/resource/query_action_status"
DBT_RUN_PATH = "/api/v2/accounts/{account_id}/runs/{run_id}/"
HTTP_PATH = "/bench/http/{item_id}"
#: dbt Cloud run statuses: 3 running, 10 success.
DBT_RUNNING, DBT_SUCCESS = 3, 10
JSON_TYPE = "application/json; charset=utf-8"

#: 4008 (daily quota), 4009 (system-wide) and 4020 (per minute) are rate limits whose HTTP status Coze
#: does not document: 429 here, like 4013.
_COZE_HTTP_STATUS = {4000: 400, 4100: 401, 4101: 403, 4200: 404, 4013: 429, 4008: 429, 4009: 429, 4020: 429}
_TRUEWATCH_HTTP_STATUS = {
    "ft.TriggerApiAkCurrentLimiting": 401,
    "ft.TriggerApiWorkspaceCurrentLimiting": 401,
    "ft.InvalidAPIKey": 403,
}


#: An HTTP status and the JSON body to send with it.
_Answer = tuple[int, dict[str, Any]]


def _headers(base: dict[str, str], step: Step) -> CIMultiDict[str]:
    """``base`` overridden by the step's own headers, whatever their case."""
    headers = CIMultiDict(base)
    headers.update(step.get("headers", {}))
    return headers


def _raw(step: Step) -> web.Response:
    """A response outside the API's envelope, e.g. a gateway's HTML error page."""
    body = step.get("body", "")
    is_json = isinstance(body, dict | list)
    headers = _headers({"Content-Type": JSON_TYPE if is_json else "text/html; charset=utf-8"}, step)
    data = json.dumps(body, ensure_ascii=False) if is_json else str(body)
    return web.Response(body=data.encode(), status=int(step.get("http_status", 200)), headers=headers)


def _extras(step: Step) -> dict[str, Any]:
    return {k: v for k, v in step.items() if k not in CONTROL_KEYS}


async def coze_status(request: web.Request) -> web.Response:
    """``GET /v1/entities/copy_tasks/{task_id}``.

    The id is read from the raw path, so ``%2F`` inside it stays part of the one segment; a raw ``/``
    in the id (a client that forgot to encode it) never matches a task.
    """
    arrived = time.time()
    raw_segment = request.rel_url.raw_path[len(COZE_PREFIX) :]
    task_id = unquote(raw_segment)
    logid = time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(9).upper()

    def envelope(code: int, msg: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"code": code, "msg": msg, "data": data, "detail": {"logid": logid}}

    state = request.app[STATE]
    token = request.headers.get("Authorization", "")
    auth_ok = token.startswith("Bearer ") and token[len("Bearer ") :] in state.coze_tokens
    refused = state.limiter.admit(COZE, token[len("Bearer ") :]) if auth_ok else None
    played = state.advance(COZE, task_id) if auth_ok and not refused and "/" not in raw_segment else None
    step: Step = {}
    answer: _Answer | None = None
    if not auth_ok:
        answer = 401, envelope(4100, "authentication is invalid: check the access token and the API region")
    elif refused is not None:
        answer = refused.http_status, envelope(int(refused.code), refused.message)
    elif played is None:
        answer = 404, envelope(4200, f"copy task {task_id} not found")
    else:
        task, step = played
        if "task_status" in step:
            data = {"task_id": task_id, "entity_type": task.entity_type, "task_status": step["task_status"]}
            data.update(entity_ids(task_id))
            data.update(_extras(step))
            answer = int(step.get("http_status", 200)), envelope(0, "", data)
        elif "code" in step:
            code = int(step["code"])
            status = int(step.get("http_status", _COZE_HTTP_STATUS.get(code, 200)))
            answer = status, envelope(code, str(step.get("msg", f"emulated error {code}")))
    limited = refused.scope if refused else None
    return await _respond(
        request, COZE, task_id, auth_ok, arrived, step, answer, {"x-tt-logid": logid}, limited
    )


async def truewatch_status(request: web.Request) -> web.Response:
    """``GET /api/v1/workspace/resource/query_action_status?taskId=<id>``.

    TrueWatch documents neither the error for a missing ``taskId`` nor the one for an unknown
    task: ``ft.ParamError`` (HTTP 400) and ``ft.TaskNotFound`` (HTTP 404) are the emulator's guesses.
    """
    arrived = time.time()
    task_id = request.query.get("taskId", "")
    trace_id = secrets.token_hex(16)

    def envelope(
        status: int, content: dict[str, Any] | None, error_code: str = "", message: str = ""
    ) -> _Answer:
        success = not error_code
        body = {"code": status, "content": content, "errorCode": error_code, "message": message}
        return status, {**body, "success": success, "traceId": trace_id}

    state = request.app[STATE]
    key = request.headers.get("DF-API-KEY", "")
    auth_ok = key in state.truewatch_keys
    refused = state.limiter.admit(TRUEWATCH, key) if auth_ok else None
    played = state.advance(TRUEWATCH, task_id) if auth_ok and not refused and task_id else None
    step: Step = {}
    answer: _Answer | None = None
    if not auth_ok:
        answer = envelope(403, None, "ft.InvalidAPIKey", "invalid DF-API-KEY")
    elif refused is not None:
        answer = envelope(refused.http_status, None, str(refused.code), refused.message)
    elif not task_id:
        answer = envelope(400, None, "ft.ParamError", "taskId is required")
    elif played is None:
        answer = envelope(404, None, "ft.TaskNotFound", f"task {task_id} not found")
    else:
        task, step = played
        if "status" in step:
            content = {"status": step["status"], "action": task.action, "message": "", "errorCode": ""}
            content["import_info"] = {}
            content.update(_extras(step))
            answer = envelope(int(step.get("http_status", 200)), content)
        elif "errorCode" in step:
            code = str(step["errorCode"])
            status = int(step.get("http_status", _TRUEWATCH_HTTP_STATUS.get(code, 400)))
            answer = envelope(status, None, code, str(step.get("message", f"emulated error {code}")))
    limited = refused.scope if refused else None
    headers = {"x-trace-id": trace_id}
    return await _respond(request, TRUEWATCH, task_id, auth_ok, arrived, step, answer, headers, limited)


async def dbt_run_status(request: web.Request) -> web.Response:
    """``GET /api/v2/accounts/{account_id}/runs/{run_id}/``: dbt Cloud's run status, for its trigger.

    Any ``Authorization: Token …`` or ``Bearer …`` is accepted; ``data.status`` is 3 (running) until
    the run id is flipped, then 10 (success).
    """
    arrived = time.time()
    run_id = request.match_info["run_id"]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    auth_ok = scheme in ("Token", "Bearer") and bool(token.strip())
    body: dict[str, Any]
    if not auth_ok:
        status, body = 401, {"status": {"code": 401, "is_success": False}, "data": None}
    else:
        done = request.app[STATE].flipped(DBT_CLOUD, run_id)
        data = {
            "id": int(run_id) if run_id.isdigit() else run_id,
            "status": DBT_SUCCESS if done else DBT_RUNNING,
        }
        status, body = 200, {"status": {"code": 200, "is_success": True}, "data": data}
    return _logged(request, DBT_CLOUD, run_id, auth_ok, arrived, web.json_response(body, status=status))


async def http_item(request: web.Request) -> web.Response:
    """``GET /bench/http/{id}``: 404 until the id is flipped, then 200.

    ``HttpSensorTrigger`` keeps waiting on a 404 and fires on any other answer.
    """
    arrived = time.time()
    item_id = request.match_info["item_id"]
    if request.app[STATE].flipped(HTTP, item_id):
        resp = web.json_response({"id": item_id, "done": True})
    else:
        resp = web.json_response({"id": item_id, "done": False}, status=404)
    return _logged(request, HTTP, item_id, True, arrived, resp)


def _logged(
    request: web.Request, api: str, item_id: str, auth_ok: bool, arrived: float, resp: web.Response
) -> web.Response:
    _record(request, api, item_id, auth_ok, resp.status, arrived)
    return resp


async def _respond(
    request: web.Request,
    api: str,
    task_id: str,
    auth_ok: bool,
    arrived: float,
    step: Step,
    answer: _Answer | None,
    headers: dict[str, str],
    limited: str | None = None,
) -> web.Response:
    """Play the step's faults (delay, reset, raw answer, truncate), send the answer and log the request."""
    await asyncio.sleep(float(step.get("delay", 0)))
    if step.get("reset"):
        _record(request, api, task_id, auth_ok, None, arrived)
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp's quiet path for a client that vanished
    if answer is None:
        resp = _raw(step)
    else:
        status, payload = answer
        body = json.dumps(payload, ensure_ascii=False).encode()
        if step.get("truncate"):
            body = body[: len(body) // 2]
        hdrs = _headers({"Content-Type": JSON_TYPE, **headers}, step)
        resp = web.Response(body=body, status=status, headers=hdrs)
    _record(request, api, task_id, auth_ok, resp.status, arrived, limited)
    return resp


def _record(
    request: web.Request,
    api: str,
    task_id: str,
    auth_ok: bool,
    status: int | None,
    arrived: float,
    limited: str | None = None,
) -> None:
    """Log a status request. Credentials are never stored: only whether they were accepted.

    ``limited`` is the budget that refused it (``"key"`` or ``"workspace"``), None if none did.
    """
    request.app[STATE].record(
        {
            "api": api,
            "task_id": task_id,
            "raw_path": request.rel_url.raw_path,
            "query_string": request.rel_url.raw_query_string,
            "http_status": status,
            "auth_valid": auth_ok,
            "limited": limited,
            "time": arrived,
            # The client's port tells connections apart: same port, same kept-alive connection
            # (a port can be reused by a later connection: ``conn`` tells those apart too).
            "peer": _peer(request),
            "conn": request.app[STATE].connection_id(request.transport),
        }
    )


def _peer(request: web.Request) -> str | None:
    peername = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peername[0]}:{peername[1]}" if peername else None


def create_app(state: EmulatorState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_get(COZE_PREFIX + "{task_id:.+}", coze_status)
    app.router.add_get(TRUEWATCH_PATH, truewatch_status)
    app.router.add_get(DBT_RUN_PATH, dbt_run_status)
    app.router.add_get(HTTP_PATH, http_item)
    add_control_routes(app)
    return app
