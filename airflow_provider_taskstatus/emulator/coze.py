"""Coze's copy-task calls: ``POST /v1/entities/copy_tasks`` (start) and ``GET …/{task_id}`` (status).

Both take ``Authorization: Bearer <token>`` (a configured token, or a live access token from the
OAuth exchange, :mod:`.oauth`) and answer ``{"code", "msg", "data", "detail": {"logid"}}``
with the log id also in ``x-tt-logid``. The start copies an entity (``entity_id``, ``entity_type``:
bot | app | workflow, ``to_workspace_id``: empty or absent for the same workspace). A same-workspace
bot is copied at once (``data.copied_entity_id``, no task); anything else creates a task
(``data.task_id``) whose status answers carry the request's ``entity_type``, its ``entity_id`` as
``source_entity_id``, ``to_workspace_id`` (or :data:`COZE_WORKSPACE_ID`) as ``target_workspace_id``
and a new ``target_entity_id``. A body Coze would not take (not a JSON object, ``entity_id`` missing
or empty, an unknown ``entity_type``, a field the call does not document) is answered with code 4000.
The start's answer and the task's lifecycle follow its plan (:mod:`.plans`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from .plans import COPY, TASK, default_steps
from .responses import (
    COZE_AUTH_MESSAGE,
    START,
    STATUS,
    Answer,
    Entry,
    Made,
    coze_answer,
    coze_error,
    coze_logid,
    extras,
    play_start,
    respond,
)
from .scripts import COZE, COZE_ENTITY_TYPES, Step, Task, entity_ids
from .state import STATE, EmulatorState

COPY_TASKS_PATH = "/v1/entities/copy_tasks"
COZE_PREFIX = COPY_TASKS_PATH + "/"
#: The workspace the emulated token belongs to: where an in-place copy lands.
COZE_WORKSPACE_ID = "7498204883280400001"
_BODY_FIELDS = ("entity_id", "entity_type", "to_workspace_id")


class BadCopy(ValueError):
    """A start body Coze would refuse with code 4000."""


@dataclass(frozen=True)
class CopyRequest:
    entity_id: str
    entity_type: str
    to_workspace_id: str

    @property
    def synchronous(self) -> bool:
        """A same-workspace bot copy: done at once, no task."""
        return self.entity_type == "bot" and self.to_workspace_id in ("", COZE_WORKSPACE_ID)

    @property
    def attrs(self) -> dict[str, str]:
        """What a plan's ``match`` is compared with."""
        return {
            "entity_id": self.entity_id,
            "entity_type": self.entity_type,
            "to_workspace_id": self.to_workspace_id,
        }


def parse_copy(text: str) -> CopyRequest:
    """The start's JSON body; :class:`BadCopy` saying what is wrong with it."""
    try:
        body = json.loads(text)
    except ValueError:
        raise BadCopy("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadCopy("the body must be a JSON object")
    unknown = sorted(k for k in body if k not in _BODY_FIELDS)
    if unknown:
        raise BadCopy(f"unknown field {', '.join(unknown)}: the fields are {', '.join(_BODY_FIELDS)}")
    entity_id, entity_type = body.get("entity_id"), body.get("entity_type")
    to_workspace = body.get("to_workspace_id") or ""
    if not isinstance(entity_id, str) or not entity_id:
        raise BadCopy("entity_id is required: a non-empty string")
    if entity_type not in COZE_ENTITY_TYPES:
        raise BadCopy(f"entity_type must be one of {', '.join(COZE_ENTITY_TYPES)}, got {entity_type!r}")
    if not isinstance(to_workspace, str):
        raise BadCopy("to_workspace_id must be a string")
    return CopyRequest(entity_id, entity_type, to_workspace)


def _token(request: web.Request, state: EmulatorState) -> str | None:
    """The Bearer token if it is an accepted one: a configured token or a live OAuth access token."""
    header = request.headers.get("Authorization", "")
    token = header[len("Bearer ") :] if header.startswith("Bearer ") else None
    if token is None or not (token in state.coze_tokens or state.oauth.accepts(token)):
        return None
    return token


async def coze_start(request: web.Request) -> web.Response:
    """``POST /v1/entities/copy_tasks``: copy now (a same-workspace bot) or create a copy task."""
    entry = Entry.begin(request, COZE, START)
    logid = coze_logid()
    headers = {"x-tt-logid": logid}
    state = request.app[STATE]
    token = _token(request, state)
    entry.auth_valid = token is not None
    if token is None:
        return await respond(
            request, entry, {}, (401, coze_answer(logid, None, 4100, COZE_AUTH_MESSAGE)), headers
        )
    refused = state.limiter.admit(COZE, token)
    if refused is not None:
        entry.limited = refused.scope
        answer = refused.http_status, coze_answer(logid, None, int(refused.code), refused.message)
        return await respond(request, entry, {}, answer, headers)
    try:
        asked = parse_copy(await request.text())
    except BadCopy as exc:
        return await respond(request, entry, {}, (400, coze_answer(logid, None, 4000, str(exc))), headers)
    plan = state.starts.take(COZE, asked.attrs, COPY if asked.synchronous else TASK)
    fault: Step = plan.start if plan else {}
    steps = plan.steps if plan and plan.steps else default_steps(COZE)

    def create() -> Made:
        new_id = state.starts.new_id(COZE)
        if asked.synchronous:
            record = state.starts.note(COZE, None, COPY, entity_id=asked.entity_id)
            return Made(
                None,
                (200, coze_answer(logid, {"copied_entity_id": new_id})),
                lambda: state.starts.answered(record),
            )
        fields = {
            "source_entity_id": asked.entity_id,
            "target_workspace_id": asked.to_workspace_id or COZE_WORKSPACE_ID,
            "target_entity_id": state.starts.new_id(COZE),
        }
        state.add_task(Task(COZE, new_id, copy.deepcopy(steps), entity_type=asked.entity_type, fields=fields))
        record = state.starts.note(COZE, new_id, TASK, entity_id=asked.entity_id)
        return Made(
            new_id, (200, coze_answer(logid, {"task_id": new_id})), lambda: state.starts.answered(record)
        )

    refusal = coze_error(logid, fault) if "code" in fault else None
    return await play_start(request, entry, fault, headers, refusal, create)


async def coze_status(request: web.Request) -> web.Response:
    """``GET /v1/entities/copy_tasks/{task_id}``.

    The id is read from the raw path, so ``%2F`` inside it stays part of the one segment; a raw ``/``
    in the id (a client that forgot to encode it) never matches a task.
    """
    raw_segment = request.rel_url.raw_path[len(COZE_PREFIX) :]
    task_id = unquote(raw_segment)
    entry = Entry.begin(request, COZE, STATUS, task_id)
    logid = coze_logid()
    state = request.app[STATE]
    token = _token(request, state)
    entry.auth_valid = token is not None
    refused = state.limiter.admit(COZE, token) if token is not None else None
    played = (
        state.advance(COZE, task_id) if token is not None and not refused and "/" not in raw_segment else None
    )
    step: Step = {}
    answer: Answer | None = None
    if token is None:
        answer = 401, coze_answer(logid, None, 4100, COZE_AUTH_MESSAGE)
    elif refused is not None:
        entry.limited = refused.scope
        answer = refused.http_status, coze_answer(logid, None, int(refused.code), refused.message)
    elif played is None:
        answer = 404, coze_answer(logid, None, 4200, f"copy task {task_id} not found")
    else:
        task, step = played
        if "task_status" in step:
            data = {"task_id": task_id, "entity_type": task.entity_type, "task_status": step["task_status"]}
            data.update(entity_ids(task_id))
            data.update(task.fields)
            data.update(extras(step))
            answer = int(step.get("http_status", 200)), coze_answer(logid, data)
        elif "code" in step:
            answer = coze_error(logid, step)
    return await respond(request, entry, step, answer, {"x-tt-logid": logid})
