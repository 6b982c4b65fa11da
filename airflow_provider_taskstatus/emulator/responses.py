"""What every emulated answer shares: the two envelopes, fault playback and the request log.

The API modules (:mod:`.coze`, :mod:`.truewatch`) decide *what* to answer; :func:`respond` (status
calls) and :func:`play_start` (start calls) play the step's or plan's faults around it (delay,
reset, raw answer, truncate, extra headers) and log the request, credentials never included.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from aiohttp import web
from multidict import CIMultiDict

from .scripts import CONTROL_KEYS, Step
from .state import STATE

JSON_TYPE = "application/json; charset=utf-8"
#: The ``call`` of a request in the log: a status poll, a call that creates a remote task, or an OAuth
#: token exchange (:mod:`.oauth`).
STATUS, START, OAUTH = "status", "start", "oauth"

#: 4008 (daily quota), 4009 (system-wide) and 4020 (per minute) are rate limits whose HTTP status Coze
#: does not document: 429 here, like 4013.
COZE_HTTP_STATUS = {4000: 400, 4100: 401, 4101: 403, 4200: 404, 4013: 429, 4008: 429, 4009: 429, 4020: 429}
TRUEWATCH_HTTP_STATUS = {
    "ft.TriggerApiAkCurrentLimiting": 401,
    "ft.TriggerApiWorkspaceCurrentLimiting": 401,
    "ft.InvalidAPIKey": 403,
}
COZE_AUTH_MESSAGE = "authentication is invalid: check the access token and the API region"

#: An HTTP status and the JSON body to send with it.
Answer = tuple[int, dict[str, Any]]


def coze_logid() -> str:
    return time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(9).upper()


def coze_answer(logid: str, data: dict[str, Any] | None, code: int = 0, msg: str = "") -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data, "detail": {"logid": logid}}


def coze_error(logid: str, step: Step) -> Answer:
    """A step's or plan's ``code``/``msg`` as Coze answers it, HTTP status from the code unless set."""
    code = int(step["code"])
    status = int(step.get("http_status", COZE_HTTP_STATUS.get(code, 200)))
    return status, coze_answer(logid, None, code, str(step.get("msg", f"emulated error {code}")))


def truewatch_answer(
    trace_id: str, status: int, content: dict[str, Any] | None, error_code: str = "", message: str = ""
) -> Answer:
    body = {"code": status, "content": content, "errorCode": error_code, "message": message}
    return status, {**body, "success": not error_code, "traceId": trace_id}


def truewatch_error(trace_id: str, step: Step) -> Answer:
    """A step's or plan's ``errorCode``/``message``, HTTP status from the code unless set."""
    code = str(step["errorCode"])
    status = int(step.get("http_status", TRUEWATCH_HTTP_STATUS.get(code, 400)))
    return truewatch_answer(trace_id, status, None, code, str(step.get("message", f"emulated error {code}")))


def extras(step: Step) -> dict[str, Any]:
    """The step's answer fields: everything but the keys that steer the emulator."""
    return {k: v for k, v in step.items() if k not in CONTROL_KEYS}


def merged_headers(base: dict[str, str], step: Step) -> CIMultiDict[str]:
    """``base`` overridden by the step's own headers, whatever their case."""
    headers = CIMultiDict(base)
    headers.update(step.get("headers", {}))
    return headers


def raw_response(step: Step) -> web.Response:
    """A response outside the API's envelope, e.g. a gateway's HTML error page."""
    body = step.get("body", "")
    is_json = isinstance(body, dict | list)
    headers = merged_headers({"Content-Type": JSON_TYPE if is_json else "text/html; charset=utf-8"}, step)
    data = json.dumps(body, ensure_ascii=False) if is_json else str(body)
    return web.Response(body=data.encode(), status=int(step.get("http_status", 200)), headers=headers)


def encoded(answer: Answer, headers: dict[str, str], step: Step) -> web.Response:
    """The answer as JSON, cut in half if the step says ``truncate``."""
    status, payload = answer
    body = json.dumps(payload, ensure_ascii=False).encode()
    if step.get("truncate"):
        body = body[: len(body) // 2]
    return web.Response(
        body=body, status=status, headers=merged_headers({"Content-Type": JSON_TYPE, **headers}, step)
    )


@dataclass
class Entry:
    """One request's log entry, filled in as the handler learns (credential, budget, task id).

    The peer and connection are taken on arrival: a client that gives up during a ``delay`` takes
    its connection with it, and the entry must still say which one it was.
    """

    api: str
    call: str
    task_id: str | None
    raw_path: str
    query_string: str
    time: float
    peer: str | None
    conn: int | None
    auth_valid: bool = True
    limited: str | None = None

    @classmethod
    def begin(cls, request: web.Request, api: str, call: str, task_id: str | None = None) -> Entry:
        transport = request.transport
        peername = transport.get_extra_info("peername") if transport else None
        return cls(
            api=api,
            call=call,
            task_id=task_id,
            raw_path=request.rel_url.raw_path,
            query_string=request.rel_url.raw_query_string,
            time=time.time(),
            # The client's port tells connections apart: same port, same kept-alive connection
            # (a port can be reused by a later connection: ``conn`` tells those apart too).
            peer=f"{peername[0]}:{peername[1]}" if peername else None,
            conn=request.app[STATE].connection_id(transport),
        )

    def finish(self, request: web.Request, http_status: int | None) -> None:
        """Log the request (``http_status`` None: no answer was sent). ``limited``: the budget that refused it."""
        request.app[STATE].record(
            {
                "api": self.api,
                "call": self.call,
                "task_id": self.task_id,
                "raw_path": self.raw_path,
                "query_string": self.query_string,
                "http_status": http_status,
                "auth_valid": self.auth_valid,
                "limited": self.limited,
                "time": self.time,
                "peer": self.peer,
                "conn": self.conn,
            }
        )


def _abort(request: web.Request, entry: Entry) -> NoReturn:
    """Drop the connection without any HTTP response."""
    entry.finish(request, None)
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError  # aiohttp's quiet path for a client that vanished


async def respond(
    request: web.Request, entry: Entry, step: Step, answer: Answer | None, headers: dict[str, str]
) -> web.Response:
    """Play the step's faults (delay, reset, raw answer, truncate), send the answer and log the request."""
    await asyncio.sleep(float(step.get("delay", 0)))
    if step.get("reset"):
        _abort(request, entry)
    resp = raw_response(step) if answer is None else encoded(answer, headers, step)
    entry.finish(request, resp.status)
    return resp


@dataclass
class Made:
    """What a start created: the task id (None for a synchronous copy), the answer that tells the
    client so, and a callback marking the side effect as answered (see ``StartBook.answered``)."""

    task_id: str | None
    answer: Answer
    answered: Callable[[], None]


async def play_start(
    request: web.Request,
    entry: Entry,
    fault: Step,
    headers: dict[str, str],
    refusal: Answer | None,
    create: Callable[[], Made],
) -> web.Response:
    """Answer a start call as its plan's ``start`` says (see :mod:`.plans`) and log it.

    ``refusal`` is an envelope answer sent instead of creating anything (a scripted error code or
    an import conflict); ``create`` makes the task (or copy). Without ``lost`` the side effect
    happens only if the call succeeds, after the delay; with it, first, whatever is answered then.
    A side effect counts as answered only when its success answer went whole to a client still there.
    """
    lost = bool(fault.get("lost"))
    other = refusal is not None or "http_status" in fault or "body" in fault
    made = create() if lost else None
    if made is not None:
        entry.task_id = made.task_id
    await asyncio.sleep(float(fault.get("delay", 0)))
    if made is None:
        if fault.get("reset"):
            _abort(request, entry)
        if not other:
            made = create()
            entry.task_id = made.task_id
    elif fault.get("reset") or not (other or fault.get("truncate") or "delay" in fault):
        _abort(request, entry)  # "lost" alone: created, then the connection drops
    if other:  # nothing was created, or it was and the client is told something else
        resp = raw_response(fault) if refusal is None else encoded(refusal, headers, fault)
    else:
        assert made is not None
        resp = encoded(made.answer, headers, fault)
        if not fault.get("truncate") and request.transport is not None and not request.transport.is_closing():
            made.answered()
    entry.finish(request, resp.status)
    return resp
