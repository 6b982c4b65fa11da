"""Strict checks of what users send the emulator: scripts (steps) and control request bodies.

The same checks serve ``EmulatorServer.set_task`` / ``inject_faults`` / ``plan_starts`` (a
:class:`SpecError`, a ``ValueError``) and the ``/_emulator`` endpoints (HTTP 400 with the same
message), so a typo in a test script fails loudly wherever it is written instead of being merged
into an answer. Start plans have their own checks in :mod:`.plans`, built on these.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Collection, Iterable
from typing import Any

from .scripts import APIS, COZE, ERROR_KEY, STATUS_KEY, STEP_KEYS, TRUEWATCH, Step, Task

#: The keys of a task spec (``POST /_emulator/tasks``).
TASK_KEYS = ("api", "task_id", "steps", "entity_type", "action")


class SpecError(ValueError):
    """Invalid input; ``known_keys`` lists the accepted keys when the problem is an unknown key."""

    def __init__(self, message: str, known_keys: Iterable[str] | None = None) -> None:
        super().__init__(message)
        self.known_keys = sorted(known_keys) if known_keys is not None else None


def check_keys(given: Iterable[object], known: Collection[str], what: str) -> None:
    """Refuse any key of ``given`` outside ``known``, naming it, close matches and the known keys."""
    unknown = [k for k in given if k not in known]
    if not unknown:
        return
    names = ", ".join(repr(k) for k in unknown)
    plural = "s" if len(unknown) > 1 else ""
    close = [m for k in unknown if isinstance(k, str) for m in _suggestions(k, known)]
    hint = f" (did you mean {' or '.join(repr(m) for m in close)}?)" if close else ""
    accepted = ", ".join(sorted(known)) if known else "none"
    raise SpecError(f"{what}: unknown key{plural} {names}{hint}; known keys: {accepted}", known)


def _suggestions(word: str, known: Collection[str]) -> list[str]:
    """Known keys spelled alike, plus those sharing the word's first part (``http_code``: ``http_status``)."""
    close = difflib.get_close_matches(word, known, n=2)
    head = word.split("_", 1)[0]
    if "_" in word and len(head) >= 3:
        close += sorted(k for k in known if k.startswith(head + "_") and k not in close)
    return close


def make_task(
    api: object,
    task_id: object,
    steps: object,
    entity_type: object = None,
    action: object = None,
) -> Task:
    """Validate untrusted input (e.g. JSON from the control endpoint); raise SpecError saying why."""
    if not isinstance(api, str) or api not in APIS:
        raise SpecError(f"api must be one of {list(APIS)}, got {api!r}")
    if not isinstance(task_id, str) or not task_id:
        raise SpecError("task_id must be a non-empty string")
    if not isinstance(steps, list) or not steps:
        raise SpecError("steps must be a non-empty list")
    for i, step in enumerate(steps):
        check_step(api, step, f"step {i}")
    for name, value in (("entity_type", entity_type), ("action", action)):
        if value is not None and not isinstance(value, str):
            raise SpecError(f"{name} must be a string")
    try:  # a deep copy that also guarantees the answers can be serialized
        copied: list[Step] = json.loads(json.dumps(steps))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"steps must be JSON-serializable: {exc}") from None
    return Task(
        api=api,
        task_id=task_id,
        steps=copied,
        entity_type=entity_type if isinstance(entity_type, str) else "bot",
        action=action if isinstance(action, str) else "import",
    )


def task_from_spec(spec: object) -> Task:
    """A task from a ``POST /_emulator/tasks`` object: its keys are :data:`TASK_KEYS`."""
    spec = _object(spec, "a task must be a JSON object")
    check_keys(spec, TASK_KEYS, "task")
    return make_task(*(spec.get(k) for k in TASK_KEYS))


def faults_from_spec(spec: object, task_id: str) -> Task:
    """Global faults from a ``POST /_emulator/faults`` object: ``{"api", "steps"}``."""
    spec = _object(spec, "body must be a JSON object")
    check_keys(spec, ("api", "steps"), "faults")
    return make_task(spec.get("api"), task_id, spec.get("steps"))


def check_step(api: str, step: object, what: str) -> None:
    step = _object(step, f"{what}: must be an object")
    check_keys(step, STEP_KEYS[api], f"{what} ({api})")
    problem = _value_problem(api, step)
    if problem:
        raise SpecError(f"{what}: {problem}")


def _object(value: object, message: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise SpecError(message)
    return value


def _value_problem(api: str, step: dict[Any, Any]) -> str | None:
    repeat = step.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        return f"repeat must be a positive integer, got {repeat!r}"
    seconds = step.get("seconds", 1)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds < math.inf:
        return f"seconds must be a positive number, got {seconds!r}"
    if "repeat" in step and "seconds" in step:
        # Which would end the step first is a question a script should not make anyone answer.
        return "a step takes either repeat (requests) or seconds (time), not both"
    problem = modifier_problem(api, step, ("reset", "truncate"))
    if problem:
        return problem
    kinds = (STATUS_KEY[api], ERROR_KEY[api], "http_status", "body", "reset")
    if not any(k in step for k in kinds if k != "reset") and step.get("reset") is not True:
        falsy = ' ("reset": false answers nothing)' if "reset" in step else ""
        return f"needs one of {list(kinds)} for api {api!r}{falsy}"
    return None


def modifier_problem(api: str, step: dict[Any, Any], flags: tuple[str, ...]) -> str | None:
    """What is wrong with the keys a status step and a start plan's ``start`` share, if anything."""
    delay = step.get("delay", 0)
    if not isinstance(delay, int | float) or isinstance(delay, bool) or not 0 <= delay < math.inf:
        return f"delay must be a non-negative number of seconds, got {delay!r}"
    status = step.get("http_status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return f"http_status must be an integer between 100 and 599, got {status!r}"
    headers = step.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        return "headers must be an object of strings"
    for flag in flags:
        if not isinstance(step.get(flag, False), bool):
            return f"{flag} must be true or false, got {step[flag]!r}"
    if not isinstance(step.get("body", ""), str | dict | list):
        return "body must be a string, an object or a list"
    if (
        api == COZE
        and "code" in step
        and (not isinstance(step["code"], int) or isinstance(step["code"], bool))
    ):
        return "code must be an integer"
    if api == TRUEWATCH and not isinstance(step.get("errorCode", ""), str):
        return "errorCode must be a string"
    return None
