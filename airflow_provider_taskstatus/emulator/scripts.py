"""Task lifecycles for the emulator: the step format and the seeded demo tasks.

Tasks come from three places: the seeded demo tasks below, scripts set by tests
(``EmulatorServer.set_task``, ``POST /_emulator/tasks``), and the emulated start calls, which create
a task with a default lifecycle or one scripted by a *start plan* (:mod:`.plans`). A *task* belongs to one API (``"coze"`` or ``"truewatch"``) and has a list of *steps*. Every
authenticated status request for the task consumes the next step; ``"repeat": n`` (default 1)
makes a step answer ``n`` requests, ``"seconds": s`` makes it answer every request for ``s``
seconds from the first one it answered (a step takes one or the other), and once the steps run out
the last one answers forever. So ``[{"status": "running", "seconds": 45}, {"status": "ok"}]``
reports running for 45 s after the first poll, however often the client polls, then ok. A request
refused by a rate limit (:mod:`.limits`) consumes no step. Steps are plain JSON-able dicts, so the
same script works from Python (``EmulatorServer.set_task``) and over HTTP (``POST /_emulator/tasks``).

Each task records when each of its steps started answering (:attr:`Task.changes`, read with
``EmulatorServer.task_changes`` or ``GET /_emulator/changes``), so a test can tell when the status
the client saw changed.

Status steps (the normal answer)::

    {"task_status": "in_progress"}                          # Coze: data.task_status
    {"task_status": "failed", "failed_reasons": [...]}      # other data fields are merged into data
    {"status": "running"}                                   # TrueWatch: content.status
    {"status": "ok", "import_info": {"successCount": 10, "failCount": 2}}
    {"status": "error", "errorCode": "ft.X", "message": "..."}   # content fields merged into content

A status step may set only the fields the API documents (:data:`STATUS_FIELDS`); an envelope error
step its :data:`ERROR_FIELDS`. Any other key is refused (:mod:`.validation`), with the list of the
keys the API's steps take, so that ``"repeats": 3`` fails loudly instead of landing in ``data``.

Envelope errors (a status key wins, so ``{"status": "error", "errorCode": ...}`` above is a status)::

    {"code": 4013, "msg": "rate limited"}                   # Coze; HTTP 4000→400, 4100→401, 4101→403,
                                                            # 4200→404, 4013/4008/4009/4020→429, else 200
    {"errorCode": "ft.TriggerApiAkCurrentLimiting", "message": "..."}
                                                            # TrueWatch; HTTP 401 for *CurrentLimiting,
                                                            # 403 for ft.InvalidAPIKey, else 400

Faults::

    {"http_status": 503, "body": "<html>…</html>", "headers": {"Retry-After": "2"}}
                    # raw response, no envelope: text/html, or JSON if body is a dict or list
    {"reset": true}                       # drop the connection without any HTTP response
    {"truncate": true, "status": "ok"}    # valid HTTP, but only the first half of the JSON body

Global faults: ``EmulatorServer.inject_faults(api, steps)`` or ``POST /_emulator/faults``
``{"api": ..., "steps": [...]}`` make the steps answer the API's next status requests (counting
``repeat`` and ``seconds``), whatever the task; the tasks' own scripts pause meanwhile and resume
where they were. Start calls are scripted by plans instead (:mod:`.plans`).

Modifiers accepted on any step: ``"delay": seconds`` (a non-negative number: sleep before
answering), ``"headers": {...}`` (extra response headers, strings), ``"http_status": n`` (override
the status of a status/envelope step), ``"repeat": n`` (a positive integer) or ``"seconds": s`` (a
positive number; not both). ``reset`` and
``truncate`` are booleans, ``false`` being the same as leaving the key out: so ``{"reset": false}``
alone is refused, as it would answer nothing in particular.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

Step = dict[str, Any]

COZE = "coze"
TRUEWATCH = "truewatch"
APIS = (COZE, TRUEWATCH)
#: What Coze copies (a start call's ``entity_type``) and what a TrueWatch task does (its ``action``).
COZE_ENTITY_TYPES = ("bot", "app", "workflow")
TRUEWATCH_ACTIONS = ("export", "import")

#: The key that makes a step a status step, and the one that makes it an envelope error, per API.
STATUS_KEY = {COZE: "task_status", TRUEWATCH: "status"}
ERROR_KEY = {COZE: "code", TRUEWATCH: "errorCode"}

#: The fields a status step may set in the answer's ``data`` (Coze) / ``content`` (TrueWatch): the
#: documented response fields of each status API. Anything else in a step is a typo, not a field.
STATUS_FIELDS = {
    COZE: frozenset(
        {
            "task_status",
            "task_id",
            "entity_type",
            "source_entity_id",
            "target_entity_id",
            "target_workspace_id",
            "failed_reasons",
        }
    ),
    TRUEWATCH: frozenset({"status", "action", "message", "errorCode", "import_info"}),
}
#: The fields of an envelope error step, per API.
ERROR_FIELDS = {COZE: frozenset({"code", "msg"}), TRUEWATCH: frozenset({"errorCode", "message"})}

#: Step keys that steer the emulator and never show up in a response body.
CONTROL_KEYS = frozenset(
    {"repeat", "seconds", "delay", "reset", "truncate", "headers", "http_status", "body"}
)

#: The task id under which global faults are kept (see ``EmulatorServer.inject_faults``).
GLOBAL_FAULTS = "*"


#: Every key a step of each API may hold; any other is refused (see :mod:`.validation`).
STEP_KEYS = {api: STATUS_FIELDS[api] | ERROR_FIELDS[api] | CONTROL_KEYS for api in APIS}


@dataclass
class Task:
    """One scripted task; ``served`` counts the status requests answered so far.

    ``fields`` go into every status answer under the step's own (a started copy task's
    ``source_entity_id`` and the like, so its answers tell what the start call asked for).

    ``changes`` holds one entry per step that started answering, oldest first:
    ``{"time": epoch seconds, "step": its index, "status": its status value or None, "answer": the step}``.
    """

    api: str
    task_id: str
    steps: list[Step]
    entity_type: str = "bot"
    action: str = "import"
    fields: dict[str, Any] = field(default_factory=dict)
    served: int = field(default=0, compare=False)
    changes: list[dict[str, Any]] = field(default_factory=list, init=False, compare=False)
    #: The step answering now, how many requests it answered, and when (monotonic) it answered first.
    _index: int = field(default=0, init=False, compare=False, repr=False)
    _count: int = field(default=0, init=False, compare=False, repr=False)
    _since: float | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def length(self) -> int | None:
        """Requests the script answers before its last step starts repeating; None if a step is timed."""
        if any("seconds" in step for step in self.steps):
            return None
        return sum(int(step.get("repeat", 1)) for step in self.steps)

    def exhausted(self, now: float | None = None) -> bool:
        """Whether every step has had its turn (global faults then give way to the tasks' scripts)."""
        return self._next_index(time.monotonic() if now is None else now) is None

    def advance(self, now: float | None = None) -> Step:
        """Return the step that answers a request at ``now`` (monotonic) and count the request."""
        now = time.monotonic() if now is None else now
        index = self._next_index(now)
        if index is None:  # past the end: the last step answers forever
            index = len(self.steps) - 1
        elif index != self._index:
            self._index, self._count, self._since = index, 0, None
        step = self.steps[index]
        if self._since is None:
            self._since = now
            status = step.get(STATUS_KEY.get(self.api, ""))
            self.changes.append({"time": time.time(), "step": index, "status": status, "answer": step})
        self._count += 1
        self.served += 1
        return step

    def _next_index(self, now: float) -> int | None:
        """The step that would answer at ``now``: the current one while its turn lasts, else a later one."""
        index, count, since = self._index, self._count, self._since
        while index < len(self.steps):
            step = self.steps[index]
            if "seconds" in step:
                if since is None or now - since < float(step["seconds"]):
                    return index
            elif count < int(step.get("repeat", 1)):
                return index
            index, count, since = index + 1, 0, None
        return None


def entity_ids(task_id: str) -> dict[str, str]:
    """Stable, plausible numeric Coze ids derived from the task id (same id, same numbers)."""
    n = zlib.crc32(task_id.encode())
    return {
        "source_entity_id": str(7530938808750080000 + n),
        "target_entity_id": str(7530938808750067000 + n),
        "target_workspace_id": str(74982048832804000 + n),
    }


_REASONS = [
    {
        "entity_id": "7530938808750081101",
        "entity_name": "单词学习助手",
        "entity_type": "plugin",
        "failed_reason": "资源配额不足，无法完成复制",
    },
    {
        "entity_id": "7530938808750081102",
        "entity_name": "英语词汇知识库",
        "entity_type": "knowledge",
        "failed_reason": "知识库文件仍在处理中，暂不支持复制",
    },
]


def demo_tasks() -> list[Task]:
    """The seeded tasks, freshly built (callers may mutate them)."""
    running: Step = {"status": "running"}
    return [
        Task(
            COZE,
            "demo-copy-success",
            [{"task_status": "in_progress", "repeat": 3}, {"task_status": "successful"}],
        ),
        Task(
            COZE,
            "demo-copy-failed",
            [
                {"task_status": "in_progress"},
                {"task_status": "failed", "failed_reasons": [dict(r) for r in _REASONS]},
            ],
        ),
        Task(COZE, "demo-copy-workflow", [{"task_status": "successful"}], entity_type="workflow"),
        Task(
            TRUEWATCH,
            "demo-export-ok",
            [{"status": "start"}, {**running, "repeat": 2}, {"status": "ok"}],
            action="export",
        ),
        Task(
            TRUEWATCH,
            "demo-import-ok",
            [{**running, "repeat": 2}, {"status": "ok", "import_info": {"successCount": 12, "failCount": 0}}],
        ),
        Task(
            TRUEWATCH,
            "demo-import-partial",
            [running, {"status": "ok", "import_info": {"successCount": 10, "failCount": 2}}],
        ),
        Task(
            TRUEWATCH,
            "demo-export-partial",
            [
                running,
                {
                    "status": "ok",
                    "import_info": {
                        "exportFailedInfo": [
                            {"name": "CPU dashboard", "type": "dashboard", "reason": "dashboard was deleted"}
                        ]
                    },
                },
            ],
            action="export",
        ),
        Task(
            TRUEWATCH,
            "demo-error",
            [
                running,
                {
                    "status": "error",
                    "errorCode": "ft.ResourceImportError",
                    "message": "resource package is damaged or in an unsupported format",
                },
            ],
        ),
        Task(TRUEWATCH, "demo-cancel", [running, {"status": "cancel"}]),
    ]
