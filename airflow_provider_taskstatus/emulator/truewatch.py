"""TrueWatch's workspace resource task calls: export, import (upload) and their status.

All take ``DF-API-KEY`` and answer ``{"code": <HTTP status>, "content", "errorCode", "message",
"success", "traceId"}`` with the trace id also in ``x-trace-id``:

* ``POST /api/v1/workspace/resource/export/task/create`` (no body) creates an export task:
  ``content = {"taskId": ...}``;
* ``POST /api/v1/workspace/resource/upload`` (``multipart/form-data``: a ``files`` part holding a
  resource package, conflict options ``repeat*Op``; see :mod:`.packages`) answers
  ``content = {"repeat_name", "repeat_identifier", "repeat_conflict"}`` (lists of names) and creates
  nothing when a resource conflicts, else creates an import task (``content = {"taskId": ...}``)
  whose ``ok`` answer counts the resources it imported (``import_info.successCount``). An upload
  without a readable package, or with an unknown option value, is HTTP 400 ``ft.ParamError``;
* ``GET /api/v1/workspace/resource/query_action_status?taskId=<id>``: the task's status.

The starts' answers and the tasks' lifecycles follow their plans (:mod:`.plans`).
"""

from __future__ import annotations

import copy
import secrets

from aiohttp import web

from .packages import PackageError, Resource, read_package, triage, upload_options
from .plans import TASK, default_steps
from .responses import (
    START,
    STATUS,
    Answer,
    Entry,
    Made,
    extras,
    play_start,
    respond,
    truewatch_answer,
    truewatch_error,
)
from .scripts import TRUEWATCH, Step, Task
from .state import STATE, EmulatorState

STATUS_PATH = "/api/v1/workspace/resource/query_action_status"
EXPORT_PATH = "/api/v1/workspace/resource/export/task/create"
UPLOAD_PATH = "/api/v1/workspace/resource/upload"
#: The largest upload the emulator reads (the service's own limit is not documented).
MAX_UPLOAD = 16 * 1024 * 1024


def _gate(request: web.Request, state: EmulatorState, entry: Entry, trace_id: str) -> Answer | None:
    """The answer to a request with a wrong key or over budget; None if it may go on."""
    key = request.headers.get("DF-API-KEY", "")
    entry.auth_valid = key in state.truewatch_keys
    if not entry.auth_valid:
        return truewatch_answer(trace_id, 403, None, "ft.InvalidAPIKey", "invalid DF-API-KEY")
    refused = state.limiter.admit(TRUEWATCH, key)
    if refused is None:
        return None
    entry.limited = refused.scope
    return truewatch_answer(trace_id, refused.http_status, None, str(refused.code), refused.message)


def _param_error(trace_id: str, message: str) -> Answer:
    return truewatch_answer(trace_id, 400, None, "ft.ParamError", message)


def _creator(
    state: EmulatorState, trace_id: str, action: str, steps: list[Step], imported: list[Resource]
) -> Made:
    """Create the task (an import's resources join the workspace) and the answer that names it."""
    task_id = state.starts.new_id(TRUEWATCH)
    state.starts.import_resources(imported)
    state.add_task(Task(TRUEWATCH, task_id, copy.deepcopy(steps), action=action))
    record = state.starts.note(TRUEWATCH, task_id, TASK, action=action)
    answer = truewatch_answer(trace_id, 200, {"taskId": task_id})
    return Made(task_id, answer, lambda: state.starts.answered(record))


async def truewatch_export(request: web.Request) -> web.Response:
    """``POST …/export/task/create``: an export task of the key's workspace (any body is ignored)."""
    entry = Entry.begin(request, TRUEWATCH, START)
    trace_id = secrets.token_hex(16)
    headers = {"x-trace-id": trace_id}
    state = request.app[STATE]
    refused = _gate(request, state, entry, trace_id)
    if refused is not None:
        return await respond(request, entry, {}, refused, headers)
    plan = state.starts.take(TRUEWATCH, {"action": "export"}, TASK)
    fault: Step = plan.start if plan else {}
    steps = plan.steps if plan and plan.steps else default_steps(TRUEWATCH, "export")
    refusal = truewatch_error(trace_id, fault) if "errorCode" in fault else None
    return await play_start(
        request, entry, fault, headers, refusal, lambda: _creator(state, trace_id, "export", steps, [])
    )


async def _read_upload(request: web.Request) -> tuple[list[Resource], dict[str, str]]:
    """The package's resources and the conflict options; :class:`PackageError` saying what is wrong."""
    if request.content_type != "multipart/form-data":
        raise PackageError("the body must be multipart/form-data with a files part (the resource zip)")
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise PackageError(f"files: the upload is over the emulator's limit of {MAX_UPLOAD} bytes") from None
    except ValueError as exc:
        raise PackageError(f"the multipart body is malformed: {exc}") from None
    options = upload_options(form.items())
    parts = form.getall("files", [])
    if not parts:
        raise PackageError("files is required: a file part holding the resource zip")
    resources: list[Resource] = []
    for part in parts:
        if not isinstance(part, web.FileField):
            raise PackageError("files must be a file part (the resource zip), not a text field")
        resources += read_package(part.file.read())
    return resources, options


async def truewatch_upload(request: web.Request) -> web.Response:
    """``POST …/resource/upload``: a conflict answer, or an import task."""
    entry = Entry.begin(request, TRUEWATCH, START)
    trace_id = secrets.token_hex(16)
    headers = {"x-trace-id": trace_id}
    state = request.app[STATE]
    refused = _gate(request, state, entry, trace_id)
    if refused is not None:
        return await respond(request, entry, {}, refused, headers)
    try:
        resources, options = await _read_upload(request)
    except PackageError as exc:
        return await respond(request, entry, {}, _param_error(trace_id, str(exc)), headers)
    sorted_out = triage(resources, state.starts.resources(), options)
    plan = state.starts.take(TRUEWATCH, {"action": "import"}, None if sorted_out.conflict else TASK)
    fault: Step = plan.start if plan else {}
    imported = len(sorted_out.imported)
    steps = plan.steps if plan and plan.steps else default_steps(TRUEWATCH, "import", imported)
    refusal = None
    raw = "http_status" in fault or "body" in fault  # a gateway's page hides any conflict
    if "errorCode" in fault:
        refusal = truewatch_error(trace_id, fault)
    elif not raw and (sorted_out.conflict or "repeat_conflict" in fault):
        conflicts = {
            "repeat_name": sorted_out.repeat_name,
            "repeat_identifier": sorted_out.repeat_identifier,
            "repeat_conflict": list(fault.get("repeat_conflict", [])),
        }
        refusal = truewatch_answer(trace_id, 200, conflicts)

    def create() -> Made:
        return _creator(state, trace_id, "import", steps, sorted_out.imported)

    return await play_start(request, entry, fault, headers, refusal, create)


async def truewatch_status(request: web.Request) -> web.Response:
    """``GET /api/v1/workspace/resource/query_action_status?taskId=<id>``.

    TrueWatch documents neither the error for a missing ``taskId`` nor the one for an unknown
    task: ``ft.ParamError`` (HTTP 400) and ``ft.TaskNotFound`` (HTTP 404) are the emulator's guesses.
    """
    task_id = request.query.get("taskId", "")
    entry = Entry.begin(request, TRUEWATCH, STATUS, task_id)
    trace_id = secrets.token_hex(16)
    state = request.app[STATE]
    answer = _gate(request, state, entry, trace_id)
    step: Step = {}
    if answer is None:
        answer, step = _status_answer(state, trace_id, task_id)
    return await respond(request, entry, step, answer, {"x-trace-id": trace_id})


def _status_answer(state: EmulatorState, trace_id: str, task_id: str) -> tuple[Answer | None, Step]:
    """An admitted status request's answer (None: the step's raw answer) and the step that played."""
    if not task_id:
        return _param_error(trace_id, "taskId is required"), {}
    played = state.advance(TRUEWATCH, task_id)
    if played is None:
        return truewatch_answer(trace_id, 404, None, "ft.TaskNotFound", f"task {task_id} not found"), {}
    task, step = played
    if "status" in step:
        content = {"status": step["status"], "action": task.action, "message": "", "errorCode": ""}
        content["import_info"] = {}
        content.update(task.fields)
        content.update(extras(step))
        return truewatch_answer(trace_id, int(step.get("http_status", 200)), content), step
    if "errorCode" in step:
        return truewatch_error(trace_id, step), step
    return None, step
