"""The ``/_emulator`` control endpoints: script tasks, faults, start plans and budgets, flip stand-ins,
read the log, reset.

* ``POST /_emulator/tasks``, ``/faults``, ``/starts`` (plans, :mod:`.plans`), ``/limits``,
  ``/resources`` (the TrueWatch workspace's, :mod:`.packages`), ``/flip``, ``/reset``;
* ``GET /_emulator/requests[?api=&task_id=&call=&counts=true]``: the request log, a JSON list of
  entries (``call``: ``status``, ``start`` or ``oauth``). With ``counts=true`` it is an object instead,
  ``{"requests": [the list], "started": {"coze": n, "truewatch": n}}``: the side effects (tasks,
  synchronous copies) of the start calls per API since the last reset, whatever the filters.
  Without the flag the list stays a list, as the benchmark and older tests read it;
* ``GET /_emulator/started[?api=]``: those side effects, oldest first (see ``EmulatorServer.started``);
* ``GET /_emulator/stats``, ``/limits``, ``/changes``, ``/resources``, ``/health``;
* OAuth (:mod:`.oauth`, served by :mod:`.oauth_http`): ``POST /_emulator/oauth/apps`` (``{"app_id", "public_keys": {kid: PEM},
  "token_lifetime"?, "account_ids"?}``), ``/oauth/keys/revoke`` (``{"kid"}``), ``/oauth/tokens/expire``,
  ``/oauth/faults`` (``{"error_code", "http_status"?, "times"?, "error_message"?}``);
  ``GET /_emulator/oauth/exchanges[?outcome=]``.

They are strict: a body or query key they do not know, or a step key the API's steps do not take,
is refused with HTTP 400 ``{"error": ..., "known_keys": [...]}`` rather than ignored, because an
ignored typo (``"repeats": 3``) makes a test pass or fail for the wrong reason.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .limits import RateLimits
from .packages import check_resources
from .plans import plans_from_spec
from .scripts import APIS, GLOBAL_FAULTS
from .state import FLIP_APIS, STATE
from .validation import SpecError, check_keys, faults_from_spec, task_from_spec

_NO_BODY = object()


def refusal(exc: ValueError) -> web.Response:
    """HTTP 400 with the reason, and the accepted keys when the problem is an unknown one."""
    body: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, SpecError) and exc.known_keys is not None:
        body["known_keys"] = exc.known_keys
    return web.json_response(body, status=400)


async def json_body(request: web.Request, default: object = _NO_BODY) -> Any:
    """The request's JSON body; ``default`` for an empty body if given, else an empty body is refused."""
    text = await request.text()
    if not text.strip():
        if default is _NO_BODY:
            raise SpecError("the body must be JSON, and it is empty")
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SpecError(f"the body is not valid JSON: {exc}") from None


def check_query(request: web.Request, known: tuple[str, ...]) -> None:
    check_keys(request.query.keys(), known, f"query of {request.path}")


async def control_set_task(request: web.Request) -> web.Response:
    """``POST /_emulator/tasks``: create or replace a scripted task, or a list of them (all or none)."""
    try:
        body = await json_body(request)
        if isinstance(body, list):
            tasks = []
            for i, spec in enumerate(body):
                try:
                    tasks.append(task_from_spec(spec))
                except SpecError as exc:
                    raise SpecError(f"task {i}: {exc}", exc.known_keys) from None
        else:
            tasks = [task_from_spec(body)]
    except ValueError as exc:
        return refusal(exc)
    request.app[STATE].add_tasks(tasks)
    if isinstance(body, list):
        return web.json_response({"created": len(tasks)}, status=201)
    task = tasks[0]
    return web.json_response({"api": task.api, "task_id": task.task_id, "steps": len(task.steps)}, status=201)


async def control_inject_faults(request: web.Request) -> web.Response:
    """``POST /_emulator/faults``: ``{"api", "steps"}`` answer the API's next requests, any task.

    The answer's ``requests`` is how many requests they answer, null if a step is timed (``seconds``).
    """
    try:
        faults = faults_from_spec(await json_body(request), GLOBAL_FAULTS)
    except ValueError as exc:
        return refusal(exc)
    request.app[STATE].inject_faults(faults)
    return web.json_response({"api": faults.api, "requests": faults.length}, status=201)


async def control_flip(request: web.Request) -> web.Response:
    """``POST /_emulator/flip``: ``{"api": "dbt_cloud" | "http", "ids": [...]}`` finish those ids."""
    try:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise SpecError("body must be a JSON object")
        check_keys(body, ("api", "ids"), "flip")
        api, ids = body.get("api"), body.get("ids")
        if api not in FLIP_APIS:
            raise SpecError(f"api must be one of {list(FLIP_APIS)}, got {api!r}")
        if not isinstance(ids, list) or not all(isinstance(i, str | int) for i in ids):
            raise SpecError("ids must be a list of strings or integers")
    except ValueError as exc:
        return refusal(exc)
    request.app[STATE].flip(api, [str(i) for i in ids])
    return web.json_response({"api": api, "flipped": len(ids)})


async def control_reset(request: web.Request) -> web.Response:
    """``POST /_emulator/reset``: back to the seeded tasks and resources, no plans, an empty request log.

    It takes no parameters: no body, or ``{}``. Anything else (``{"reset": false}``) is refused
    rather than read as a reset the caller may not have meant.
    """
    try:
        body = await json_body(request, default={})
        if not isinstance(body, dict):
            raise SpecError("body must be empty or {}")
        check_keys(body, (), "reset")
    except ValueError as exc:
        return refusal(exc)
    request.app[STATE].reset()
    return web.json_response({"ok": True})


async def control_requests(request: web.Request) -> web.Response:
    """``GET /_emulator/requests[?api=&task_id=&call=&counts=true]``: the requests received so far."""
    try:
        check_query(request, ("api", "task_id", "call", "counts"))
        counts = _flag(request, "counts")
    except ValueError as exc:
        return refusal(exc)
    q, state = request.query, request.app[STATE]
    log = state.requests(q.get("api"), q.get("task_id"), q.get("call"))
    if counts:
        return web.json_response({"requests": log, "started": state.starts.counts()})
    return web.json_response(log)


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise SpecError(f"{name} must be true or false, got {value!r}")
    return value in ("true", "1")


async def control_plan_starts(request: web.Request) -> web.Response:
    """``POST /_emulator/starts``: ``{"api", "plans"}`` queue plans for the API's next start calls.

    The answer's ``pending`` is how many starts the API's queued plans now answer.
    """
    try:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise SpecError("body must be a JSON object")
        check_keys(body, ("api", "plans"), "starts")
        plans = plans_from_spec(body.get("api"), body.get("plans"))
    except ValueError as exc:
        return refusal(exc)
    api = body["api"]
    pending = request.app[STATE].starts.add_plans(api, plans)
    return web.json_response({"api": api, "plans": len(plans), "pending": pending}, status=201)


async def control_started(request: web.Request) -> web.Response:
    """``GET /_emulator/started[?api=]``: every side effect of a start call, oldest first."""
    try:
        check_query(request, ("api",))
        api = request.query.get("api")
        if api is not None and api not in APIS:
            raise SpecError(f"api must be one of {list(APIS)}, got {api!r}")
    except ValueError as exc:
        return refusal(exc)
    return web.json_response(request.app[STATE].started(api))


async def control_get_resources(request: web.Request) -> web.Response:
    """``GET /_emulator/resources``: the TrueWatch workspace's resource names, by kind."""
    try:
        check_query(request, ())
    except ValueError as exc:
        return refusal(exc)
    return web.json_response({"resources": request.app[STATE].starts.resources()})


async def control_set_resources(request: web.Request) -> web.Response:
    """``POST /_emulator/resources``: ``{"resources": {kind: [names]}}`` replace them (reset: the seed)."""
    try:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise SpecError("body must be a JSON object")
        check_keys(body, ("resources",), "resources")
        resources = check_resources(body.get("resources"))
    except ValueError as exc:
        return refusal(exc)
    request.app[STATE].starts.set_resources(resources)
    return web.json_response({"resources": resources})


async def control_stats(request: web.Request) -> web.Response:
    """``GET /_emulator/stats[?since=&until=]``: request and connection counts, without the log."""
    try:
        check_query(request, ("since", "until"))
        since, until = (
            float(v) if v else None for v in (request.query.get("since"), request.query.get("until"))
        )
    except SpecError as exc:
        return refusal(exc)
    except ValueError:
        return refusal(ValueError("since and until must be epoch seconds"))
    return web.json_response(request.app[STATE].stats(since, until))


async def control_get_limits(request: web.Request) -> web.Response:
    """``GET /_emulator/limits``: the request budgets in force (see :mod:`.limits`)."""
    try:
        check_query(request, ())
    except ValueError as exc:
        return refusal(exc)
    return web.json_response(request.app[STATE].limiter.limits.to_json())


async def control_set_limits(request: web.Request) -> web.Response:
    """``POST /_emulator/limits``: replace the budgets (omitted keys: unlimited, 60 s window, no mapping).

    The windows start empty. ``POST /_emulator/reset`` restores the budgets the server started with.
    """
    try:
        limits = RateLimits.from_json(await json_body(request))
    except ValueError as exc:
        return refusal(exc)
    request.app[STATE].limiter.configure(limits)
    return web.json_response(limits.to_json())


async def control_changes(request: web.Request) -> web.Response:
    """``GET /_emulator/changes?api=&task_id=``: when each step of the task started answering."""
    try:
        check_query(request, ("api", "task_id"))
        api, task_id = request.query.get("api"), request.query.get("task_id")
        if api not in APIS:
            raise SpecError(f"api must be one of {list(APIS)}, got {api!r}")
        if not task_id:
            raise SpecError("task_id is required")
    except ValueError as exc:
        return refusal(exc)
    changes = request.app[STATE].changes(api, task_id)
    if changes is None:
        return web.json_response({"error": f"no {api} task {task_id!r}"}, status=404)
    return web.json_response(changes)


async def control_health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def add_control_routes(app: web.Application) -> None:
    app.router.add_post("/_emulator/tasks", control_set_task)
    app.router.add_post("/_emulator/faults", control_inject_faults)
    app.router.add_get("/_emulator/requests", control_requests)
    app.router.add_get("/_emulator/stats", control_stats)
    app.router.add_post("/_emulator/flip", control_flip)
    app.router.add_post("/_emulator/reset", control_reset)
    app.router.add_get("/_emulator/health", control_health)
    app.router.add_get("/_emulator/limits", control_get_limits)
    app.router.add_post("/_emulator/limits", control_set_limits)
    app.router.add_get("/_emulator/changes", control_changes)
    app.router.add_post("/_emulator/starts", control_plan_starts)
    app.router.add_get("/_emulator/started", control_started)
    app.router.add_get("/_emulator/resources", control_get_resources)
    app.router.add_post("/_emulator/resources", control_set_resources)
