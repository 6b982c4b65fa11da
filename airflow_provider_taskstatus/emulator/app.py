"""The emulator's aiohttp application: the routes of both APIs, the stand-ins and ``/_emulator``.

Coze and TrueWatch paths do not overlap, so one server serves both: their handlers (start and
status calls) are in :mod:`.coze` and :mod:`.truewatch`, what their answers share in
:mod:`.responses`, the benchmark's stand-ins in :mod:`.standins`, the control endpoints in
:mod:`.control`. State lives in :mod:`.state`; request budgets in :mod:`.limits` (checked after
authentication and before anything else, so a refused request consumes no step, no plan and
creates nothing).
"""

from __future__ import annotations

from aiohttp import web

from .control import add_control_routes
from .coze import COPY_TASKS_PATH, COZE_PREFIX, coze_start, coze_status
from .standins import DBT_RUN_PATH, HTTP_PATH, dbt_run_status, http_item
from .state import FLIP_APIS, STATE, EmulatorState
from .truewatch import (
    EXPORT_PATH,
    MAX_UPLOAD,
    STATUS_PATH,
    UPLOAD_PATH,
    truewatch_export,
    truewatch_status,
    truewatch_upload,
)

__all__ = ["FLIP_APIS", "STATE", "EmulatorState", "create_app"]

#: The TrueWatch status path under its former name.
TRUEWATCH_PATH = STATUS_PATH


def create_app(state: EmulatorState) -> web.Application:
    # Room for a resource package (aiohttp's default is 1 MiB); a bigger upload is an ft.ParamError.
    app = web.Application(client_max_size=MAX_UPLOAD)
    app[STATE] = state
    app.router.add_post(COPY_TASKS_PATH, coze_start)
    app.router.add_get(COZE_PREFIX + "{task_id:.+}", coze_status)
    app.router.add_post(EXPORT_PATH, truewatch_export)
    app.router.add_post(UPLOAD_PATH, truewatch_upload)
    app.router.add_get(STATUS_PATH, truewatch_status)
    app.router.add_get(DBT_RUN_PATH, dbt_run_status)
    app.router.add_get(HTTP_PATH, http_item)
    add_control_routes(app)
    return app
