"""The emulator's aiohttp application: both status APIs plus the ``/_emulator`` control endpoints.

Coze and TrueWatch paths do not overlap, so one server serves both. It also answers two stand-ins
the benchmark (``benchmarks/``) polls with the peers' triggers: dbt Cloud's run-status path and a
plain URL for Airflow's ``HttpSensorTrigger``; each answers "running" until its id is *flipped*. State lives in
:class:`EmulatorState`, guarded by a thread lock because :class:`~.server.EmulatorServer` reads and
writes it from the test thread while the event loop thread answers requests.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict

from .scripts import (
    CONTROL_KEYS,
    COZE,
    GLOBAL_FAULTS,
    TRUEWATCH,
    Step,
    Task,
    demo_tasks,
    entity_ids,
    make_task,
)

COZE_PREFIX = "/v1/entities/copy_tasks/"
TRUEWATCH_PATH = "/api/v1/workspace/resource/query_action_status"
#: The stand-ins for the benchmark's anchor triggers, and their ``api`` in the request log.
DBT_CLOUD = "dbt_cloud"
HTTP = "http"
FLIP_APIS = (DBT_CLOUD, HTTP)
DBT_RUN_PATH = "/api/v2/accounts/{account_id}/runs/{run_id}/"
HTTP_PATH = "/bench/http/{item_id}"
#: dbt Cloud run statuses: 3 running, 10 success.
DBT_RUNNING, DBT_SUCCESS = 3, 10
JSON_TYPE = "application/json; charset=utf-8"

_COZE_HTTP_STATUS = {4000: 400, 4100: 401, 4101: 403, 4200: 404, 4013: 429}
_TRUEWATCH_HTTP_STATUS = {
    "ft.TriggerApiAkCurrentLimiting": 401,
    "ft.TriggerApiWorkspaceCurrentLimiting": 401,
    "ft.InvalidAPIKey": 403,
}


class EmulatorState:
    """Scripted tasks, accepted credentials and the request log, safe to use from any thread."""

    def __init__(self, coze_tokens: Iterable[str], truewatch_keys: Iterable[str]) -> None:
        self.coze_tokens = frozenset(coze_tokens)
        self.truewatch_keys = frozenset(truewatch_keys)
        self._lock = threading.Lock()
        self._tasks: dict[tuple[str, str], Task] = {}
        self._faults: dict[str, Task] = {}
        self._log: list[dict[str, Any]] = []
        self._flipped: set[tuple[str, str]] = set()
        #: A serial number per TCP connection (keyed by its transport while it lives). Client ports
        #: are reused quickly on loopback, so ``peer`` alone can merge two connections.
        self._conns: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._conn_serial = 0
        self.reset()

    def reset(self) -> None:
        """Restore the seeded demo tasks and forget all requests and flips."""
        with self._lock:
            self._tasks = {(t.api, t.task_id): t for t in demo_tasks()}
            self._faults.clear()
            self._log.clear()
            self._flipped.clear()

    def add_task(self, task: Task) -> None:
        self.add_tasks([task])

    def add_tasks(self, tasks: Iterable[Task]) -> None:
        with self._lock:
            for task in tasks:
                self._tasks[(task.api, task.task_id)] = task

    def flip(self, api: str, ids: Iterable[str]) -> None:
        """Mark ids of a stand-in API (:data:`FLIP_APIS`) as finished."""
        with self._lock:
            self._flipped.update((api, i) for i in ids)

    def flipped(self, api: str, item_id: str) -> bool:
        with self._lock:
            return (api, item_id) in self._flipped

    def inject_faults(self, faults: Task) -> None:
        """Steps that answer the API's next requests, whatever the task, before its own steps resume."""
        with self._lock:
            self._faults[faults.api] = faults

    def advance(self, api: str, task_id: str) -> tuple[Task, Step] | None:
        """Consume the next step: a pending global fault, else the task's own; None if the task is unknown."""
        with self._lock:
            task = self._tasks.get((api, task_id))
            if task is None:
                return None
            faults = self._faults.get(api)
            if faults is not None and faults.served < faults.length:
                return task, faults.advance()
            return task, task.advance()

    def connection_id(self, transport: object | None) -> int | None:
        """The serial number of the connection ``transport`` belongs to (1, 2, … since start)."""
        if transport is None:
            return None
        with self._lock:
            serial = self._conns.get(transport)
            if serial is None:
                self._conn_serial += 1
                serial = self._conns[transport] = self._conn_serial
            return serial

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)

    def requests(self, api: str | None = None, task_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(e)
                for e in self._log
                if (api is None or e["api"] == api) and (task_id is None or e["task_id"] == task_id)
            ]

    def stats(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """A summary of the requests that arrived in ``[since, until)`` (epoch seconds; open if None).

        ``connections`` counts the distinct TCP connections (``conn``) that sent requests in the
        window; ``new_connections`` only those whose first request (since the last reset) is in it,
        i.e. connections opened in the window. ``peers`` counts distinct client ``ip:port`` pairs,
        which undercounts connections when the client reuses ports.
        """
        lo = float("-inf") if since is None else since
        hi = float("inf") if until is None else until
        with self._lock:
            log = list(self._log)
        seen_before: set[int | None] = set()
        conns: set[int | None] = set()
        new_conns: set[int | None] = set()
        peers: set[str | None] = set()
        by_api: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for entry in log:
            when, conn = entry["time"], entry["conn"]
            if when < lo:
                seen_before.add(conn)
                continue
            if when >= hi:
                continue
            conns.add(conn)
            peers.add(entry["peer"])
            if conn not in seen_before:
                new_conns.add(conn)
            by_api[entry["api"]] = by_api.get(entry["api"], 0) + 1
            status = str(entry["http_status"])
            by_status[status] = by_status.get(status, 0) + 1
        return {
            "requests": sum(by_api.values()),
            "connections": len(conns),
            "new_connections": len(new_conns),
            "peers": len(peers),
            "by_api": by_api,
            "by_status": by_status,
        }


STATE = web.AppKey("state", EmulatorState)

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

    token = request.headers.get("Authorization", "")
    auth_ok = token.startswith("Bearer ") and token[len("Bearer ") :] in request.app[STATE].coze_tokens
    played = request.app[STATE].advance(COZE, task_id) if auth_ok and "/" not in raw_segment else None
    step: Step = {}
    answer: _Answer | None = None
    if not auth_ok:
        answer = 401, envelope(4100, "authentication is invalid: check the access token and the API region")
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
    return await _respond(request, COZE, task_id, auth_ok, arrived, step, answer, {"x-tt-logid": logid})


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

    auth_ok = request.headers.get("DF-API-KEY", "") in request.app[STATE].truewatch_keys
    played = request.app[STATE].advance(TRUEWATCH, task_id) if auth_ok and task_id else None
    step: Step = {}
    answer: _Answer | None = None
    if not auth_ok:
        answer = envelope(403, None, "ft.InvalidAPIKey", "invalid DF-API-KEY")
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
    return await _respond(
        request, TRUEWATCH, task_id, auth_ok, arrived, step, answer, {"x-trace-id": trace_id}
    )


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
    _record(request, api, task_id, auth_ok, resp.status, arrived)
    return resp


def _record(
    request: web.Request, api: str, task_id: str, auth_ok: bool, status: int | None, arrived: float
) -> None:
    """Log a status request. Credentials are never stored: only whether they were accepted."""
    request.app[STATE].record(
        {
            "api": api,
            "task_id": task_id,
            "raw_path": request.rel_url.raw_path,
            "query_string": request.rel_url.raw_query_string,
            "http_status": status,
            "auth_valid": auth_ok,
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


def _task_from(spec: object) -> Task:
    if not isinstance(spec, dict):
        raise ValueError("body must be a JSON object")
    return make_task(
        spec.get("api"), spec.get("task_id"), spec.get("steps"), spec.get("entity_type"), spec.get("action")
    )


async def control_set_task(request: web.Request) -> web.Response:
    """``POST /_emulator/tasks``: create or replace a scripted task, or a list of them (all or none)."""
    try:
        body = await request.json()
        specs = body if isinstance(body, list) else [body]
        tasks = [_task_from(spec) for spec in specs]
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        return web.json_response({"error": str(exc)}, status=400)
    request.app[STATE].add_tasks(tasks)
    if isinstance(body, list):
        return web.json_response({"created": len(tasks)}, status=201)
    task = tasks[0]
    return web.json_response({"api": task.api, "task_id": task.task_id, "steps": len(task.steps)}, status=201)


async def control_flip(request: web.Request) -> web.Response:
    """``POST /_emulator/flip``: ``{"api": "dbt_cloud" | "http", "ids": [...]}`` finish those ids."""
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        api, ids = body.get("api"), body.get("ids")
        if api not in FLIP_APIS:
            raise ValueError(f"api must be one of {list(FLIP_APIS)}, got {api!r}")
        if not isinstance(ids, list) or not all(isinstance(i, str | int) for i in ids):
            raise ValueError("ids must be a list of strings or integers")
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    request.app[STATE].flip(api, [str(i) for i in ids])
    return web.json_response({"api": api, "flipped": len(ids)})


async def control_stats(request: web.Request) -> web.Response:
    """``GET /_emulator/stats[?since=&until=]``: request and connection counts, without the log."""
    try:
        since, until = (
            float(v) if v else None for v in (request.query.get("since"), request.query.get("until"))
        )
    except ValueError:
        return web.json_response({"error": "since and until must be epoch seconds"}, status=400)
    return web.json_response(request.app[STATE].stats(since, until))


async def control_inject_faults(request: web.Request) -> web.Response:
    """``POST /_emulator/faults``: ``{"api", "steps"}`` answer the API's next requests, any task."""
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        faults = make_task(body.get("api"), GLOBAL_FAULTS, body.get("steps"))
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    request.app[STATE].inject_faults(faults)
    return web.json_response({"api": faults.api, "requests": faults.length}, status=201)


async def control_requests(request: web.Request) -> web.Response:
    """``GET /_emulator/requests[?api=&task_id=]``: the status requests received so far."""
    q = request.query
    return web.json_response(request.app[STATE].requests(q.get("api"), q.get("task_id")))


async def control_reset(request: web.Request) -> web.Response:
    """``POST /_emulator/reset``: back to the seeded tasks and an empty request log."""
    request.app[STATE].reset()
    return web.json_response({"ok": True})


async def control_health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def create_app(state: EmulatorState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_get(COZE_PREFIX + "{task_id:.+}", coze_status)
    app.router.add_get(TRUEWATCH_PATH, truewatch_status)
    app.router.add_get(DBT_RUN_PATH, dbt_run_status)
    app.router.add_get(HTTP_PATH, http_item)
    app.router.add_post("/_emulator/tasks", control_set_task)
    app.router.add_post("/_emulator/faults", control_inject_faults)
    app.router.add_get("/_emulator/requests", control_requests)
    app.router.add_get("/_emulator/stats", control_stats)
    app.router.add_post("/_emulator/flip", control_flip)
    app.router.add_post("/_emulator/reset", control_reset)
    app.router.add_get("/_emulator/health", control_health)
    return app
