"""Stand-ins for the benchmark's anchor triggers (``benchmarks/``), served beside the two APIs.

dbt Cloud's run-status path and a plain URL for Airflow's ``HttpSensorTrigger``: each answers
"running" until its id is *flipped* (``POST /_emulator/flip``). Their requests go to the same log,
under ``api`` ``dbt_cloud`` / ``http`` (``call`` ``status``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .responses import STATUS, Entry
from .state import DBT_CLOUD, HTTP, STATE

DBT_RUN_PATH = "/api/v2/accounts/{account_id}/runs/{run_id}/"
HTTP_PATH = "/bench/http/{item_id}"
#: dbt Cloud run statuses: 3 running, 10 success.
DBT_RUNNING, DBT_SUCCESS = 3, 10


async def dbt_run_status(request: web.Request) -> web.Response:
    """``GET /api/v2/accounts/{account_id}/runs/{run_id}/``: dbt Cloud's run status, for its trigger.

    Any ``Authorization: Token …`` or ``Bearer …`` is accepted; ``data.status`` is 3 (running) until
    the run id is flipped, then 10 (success).
    """
    run_id = request.match_info["run_id"]
    entry = Entry.begin(request, DBT_CLOUD, STATUS, run_id)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    entry.auth_valid = scheme in ("Token", "Bearer") and bool(token.strip())
    body: dict[str, Any]
    if not entry.auth_valid:
        status, body = 401, {"status": {"code": 401, "is_success": False}, "data": None}
    else:
        done = request.app[STATE].flipped(DBT_CLOUD, run_id)
        data = {
            "id": int(run_id) if run_id.isdigit() else run_id,
            "status": DBT_SUCCESS if done else DBT_RUNNING,
        }
        status, body = 200, {"status": {"code": 200, "is_success": True}, "data": data}
    entry.finish(request, status)
    return web.json_response(body, status=status)


async def http_item(request: web.Request) -> web.Response:
    """``GET /bench/http/{id}``: 404 until the id is flipped, then 200.

    ``HttpSensorTrigger`` keeps waiting on a 404 and fires on any other answer.
    """
    item_id = request.match_info["item_id"]
    entry = Entry.begin(request, HTTP, STATUS, item_id)
    if request.app[STATE].flipped(HTTP, item_id):
        resp = web.json_response({"id": item_id, "done": True})
    else:
        resp = web.json_response({"id": item_id, "done": False}, status=404)
    entry.finish(request, resp.status)
    return resp
