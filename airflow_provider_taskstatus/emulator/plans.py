"""Start plans: how an API's next start calls answer, and the lifecycle of the tasks they create.

The start calls (``POST /v1/entities/copy_tasks``; TrueWatch's ``…/export/task/create`` and
``…/upload``) create a task with a default lifecycle (:func:`default_steps`) unless a plan says
otherwise. ``EmulatorServer.plan_starts(api, plans)`` or ``POST /_emulator/starts``
``{"api": ..., "plans": [...]}`` queue plans; each start call takes one, first in first out, and a
plan with ``match`` is used only by a start it matches, in preference to the plans without one::

    {"steps": [...]}                          # the created task's lifecycle (the step format of
                                              # :mod:`.scripts`, checked the same way)
    {"match": {"entity_id": "wf-2"}, ...}     # Coze: entity_id, entity_type, to_workspace_id;
                                              # TrueWatch: action ("export" | "import")
    {"repeat": 3, ...}                        # the plan answers 3 starts (default 1)
    {"start": {...}, ...}                     # the start call's own answer, below

``start`` (combinable with ``steps`` when it creates something)::

    {"http_status": 503, "body": "<html>busy</html>"}   # raw answer; nothing created
    {"reset": true}                                     # connection dropped; nothing created
    {"code": 4020, "msg": "rate limited"}               # Coze envelope error; nothing created
    {"errorCode": "ft.TriggerApiAkCurrentLimiting"}     # TrueWatch envelope error; nothing created
    {"lost": true}                                      # created, then the connection drops
    {"lost": true, "http_status": 502, "body": "..."}   # created, then this answer (or a code/errorCode)
    {"lost": true, "delay": 5}                          # created, then the answer comes 5 s later
    {"delay": 2}                                        # answer (and creation) 2 s late
    {"truncate": true}                                  # created; the answer's body cut in half
    {"repeat_conflict": ["Ops"]}                        # TrueWatch import: a conflict answer
                                                        # listing these names; no task
    {"headers": {"Retry-After": "2"}}                   # extra headers on whatever is answered

The HTTP status of a ``code``/``errorCode`` comes from the same table as the status steps'
(:mod:`.scripts`), ``http_status`` overriding it. A plan with ``steps`` is used only by a start that
creates a task: not by a same-workspace bot copy (synchronous, no task) nor by an import answered
with a conflict, which takes only a plan that creates nothing (an error, a raw answer, a reset, a
``repeat_conflict``); a ``repeat_conflict`` plan is used only by an import. Unknown keys are refused, with the
known ones listed, as the task scripts' are (:mod:`.validation`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .scripts import APIS, COZE, COZE_ENTITY_TYPES, TRUEWATCH, TRUEWATCH_ACTIONS, Step
from .validation import SpecError, check_keys, check_step, modifier_problem

PLAN_KEYS = ("match", "repeat", "start", "steps")
MATCH_KEYS = {COZE: ("entity_id", "entity_type", "to_workspace_id"), TRUEWATCH: ("action",)}
_SHARED_START_KEYS = ("body", "delay", "headers", "http_status", "lost", "reset", "truncate")
START_KEYS = {
    COZE: (*_SHARED_START_KEYS, "code", "msg"),
    TRUEWATCH: (*_SHARED_START_KEYS, "errorCode", "message", "repeat_conflict"),
}
#: What a start creates (and a started record's ``kind``): a task to poll, or a copy made at once.
TASK, COPY = "task", "copy"
#: Without ``lost``, any of these answers the start instead of creating anything.
_INSTEAD = ("reset", "http_status", "body", "code", "errorCode", "repeat_conflict")


@dataclass
class StartPlan:
    """One queued plan; ``remaining`` counts the starts it still answers."""

    api: str
    match: dict[str, str]
    start: Step
    steps: list[Step] | None
    remaining: int = 1

    def fits(self, attrs: Mapping[str, str], creates: str | None) -> bool:
        """Whether a start with these attributes (entity_id… or action) may use this plan.

        ``creates`` is what the start would create: :data:`TASK`, :data:`COPY`, or None (an import
        answered with a conflict), which takes only a plan that creates nothing.
        """
        if any(attrs.get(k) != v for k, v in self.match.items()):
            return False
        if (self.steps is not None and creates != TASK) or (
            creates is None and not creates_nothing(self.start)
        ):
            return False
        return "repeat_conflict" not in self.start or attrs.get("action") == "import"


def creates_nothing(start: Step) -> bool:
    """Whether a ``start`` answers instead of creating (no ``lost``, and a refusal or raw answer)."""
    return not start.get("lost") and any(k in start and start[k] is not False for k in _INSTEAD)


def default_steps(api: str, action: str = "import", imported: int = 0) -> list[Step]:
    """The lifecycle of a task created without a plan's ``steps`` (a fresh list: callers keep it)."""
    if api == COZE:
        return [{"task_status": "in_progress", "repeat": 2}, {"task_status": "successful"}]
    if action == "export":
        return [{"status": "start"}, {"status": "running"}, {"status": "ok"}]
    info = {"successCount": imported, "failCount": 0}
    return [{"status": "running", "repeat": 2}, {"status": "ok", "import_info": info}]


def plans_from_spec(api: object, plans: object) -> list[StartPlan]:
    """Validate plans for ``api``; raise :class:`~.validation.SpecError` saying what is wrong."""
    if not isinstance(api, str) or api not in APIS:
        raise SpecError(f"api must be one of {list(APIS)}, got {api!r}")
    if not isinstance(plans, list) or not plans:
        raise SpecError("plans must be a non-empty list")
    return [_plan(api, spec, f"plan {i}") for i, spec in enumerate(plans)]


def _plan(api: str, spec: object, what: str) -> StartPlan:
    if not isinstance(spec, dict):
        raise SpecError(f"{what}: must be an object")
    check_keys(spec, PLAN_KEYS, what)
    if "start" not in spec and "steps" not in spec:
        raise SpecError(f"{what}: needs start or steps (or both)")
    repeat = spec.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        raise SpecError(f"{what}: repeat must be a positive integer, got {repeat!r}")
    match = _match(api, spec.get("match", {}), what)
    start = _start(api, spec["start"], what) if "start" in spec else {}
    steps = None
    if "steps" in spec:
        steps = _steps(api, spec["steps"], what)
        if creates_nothing(start):
            raise SpecError(f"{what}: steps are never used: this start creates nothing (add lost to create)")
    if "repeat_conflict" in start and match.get("action", "import") != "import":
        raise SpecError(f"{what}: repeat_conflict answers imports only, but match says {match['action']!r}")
    return StartPlan(api, match, start, steps, repeat)


def _match(api: str, match: object, what: str) -> dict[str, str]:
    if not isinstance(match, dict):
        raise SpecError(f"{what}: match must be an object")
    check_keys(match, MATCH_KEYS[api], f"{what}: match ({api})")
    for key, value in match.items():
        if not isinstance(value, str) or (key != "to_workspace_id" and not value):
            raise SpecError(f"{what}: match {key} must be a non-empty string, got {value!r}")
    allowed = {"entity_type": COZE_ENTITY_TYPES, "action": TRUEWATCH_ACTIONS}
    for key, values in allowed.items():
        if key in match and match[key] not in values:
            raise SpecError(f"{what}: match {key} must be one of {list(values)}, got {match[key]!r}")
    return dict(match)


def _start(api: str, start: object, what: str) -> Step:
    if not isinstance(start, dict):
        raise SpecError(f"{what}: start must be an object")
    check_keys(start, START_KEYS[api], f"{what}: start ({api})")
    problem = modifier_problem(api, start, ("reset", "truncate", "lost"))
    for text in ("msg", "message"):
        if not problem and not isinstance(start.get(text, ""), str):
            problem = f"{text} must be a string"
    if not problem and "repeat_conflict" in start:
        problem = _conflict_problem(start)
    if not problem and all(v is False for v in start.values()):
        problem = f"needs one of {list(START_KEYS[api])} (an empty or all-false start answers as usual)"
    if problem:
        raise SpecError(f"{what}: start: {problem}")
    try:
        copied: Step = json.loads(json.dumps(start))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{what}: start must be JSON-serializable: {exc}") from None
    return copied


def _conflict_problem(start: dict[str, Any]) -> str | None:
    names = start["repeat_conflict"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        return "repeat_conflict must be a non-empty list of names (strings)"
    others = sorted(k for k in start if k not in ("repeat_conflict", "delay", "headers"))
    if others:
        return (
            f"repeat_conflict is the whole answer: it takes only delay and headers, not {', '.join(others)}"
        )
    return None


def _steps(api: str, steps: object, what: str) -> list[Step]:
    if not isinstance(steps, list) or not steps:
        raise SpecError(f"{what}: steps must be a non-empty list")
    for j, step in enumerate(steps):
        check_step(api, step, f"{what}: step {j}")
    try:  # a deep copy that also guarantees the answers can be serialized
        copied: list[Step] = json.loads(json.dumps(steps))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{what}: steps must be JSON-serializable: {exc}") from None
    return copied
