"""Start calls through the hooks, sync and async, against the emulator over real loopback HTTP.

Each failure of a start call ends as the README's table says, and the emulator's record of what
the calls created proves that no retry created a second remote task.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.emulator.packages import resource_zip
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
from airflow_provider_taskstatus.models.base import ApiError, ErrorKind, State, TaskStatusError
from airflow_provider_taskstatus.models.start import Started
from airflow_provider_taskstatus.models.truewatch import ImportConflictError
from airflow_provider_taskstatus.transport.policy import RetryPolicy

FAST = RetryPolicy(timeout=1, max_retries=2, backoff=0.01, max_backoff=0.05)

#: A start call, made with or without the event loop: (hook, method name, args) → Started.
Caller = Callable[[TaskStatusHook, str, tuple[Any, ...]], Awaitable[Started]]


async def sync_call(hook: TaskStatusHook, method: str, args: tuple[Any, ...]) -> Started:
    result: Started = getattr(hook, method)(*args)
    return result


async def async_call(hook: TaskStatusHook, method: str, args: tuple[Any, ...]) -> Started:
    result: Started = await getattr(hook, "a" + method)(*args)
    return result


@pytest.fixture(params=[sync_call, async_call], ids=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Caller:
    caller: Caller = request.param
    return caller


def coze() -> CozeHook:
    return CozeHook(request_policy=FAST)


def truewatch() -> TrueWatchHook:
    return TrueWatchHook(request_policy=FAST)


def starts(emulator: EmulatorServer, api: str, *, at_least: int = 0) -> list[dict[str, Any]]:
    """The start requests the emulator logged; waits (5 s at most) for ``at_least`` of them: a
    request is logged when its answer goes out, after any ``delay``."""
    give_up = time.monotonic() + 5
    while True:
        found = [r for r in emulator.requests(api) if r.get("call") == "start"]
        if len(found) >= at_least or time.monotonic() > give_up:
            return found
        time.sleep(0.05)


# -- what a good start gives ---------------------------------------------------------------------


async def test_coze_copy_starts_a_task_to_wait_for(emulator: EmulatorServer, call: Caller) -> None:
    hook = coze()
    started = await call(hook, "start_copy", ("wf-1", "workflow", "7498204"))
    assert started.task_id and started.task_id == started.payload["task_id"]
    assert "Coze copy of workflow 'wf-1' to workspace 7498204 started" in started.message
    assert started.request_id and started.request_id in started.message
    states = [hook.get_task_status(started.task_id).state for _ in range(3)]
    assert states == [State.RUNNING, State.RUNNING, State.SUCCEEDED]
    final = hook.get_task_status(started.task_id).payload
    assert (final["source_entity_id"], final["target_workspace_id"]) == ("wf-1", "7498204")
    assert emulator.start_count("coze") == 1


async def test_coze_bot_copied_in_its_workspace_is_done_at_once(
    emulator: EmulatorServer, call: Caller
) -> None:
    started = await call(coze(), "start_copy", ("bot-1", "bot", None))
    assert started.task_id is None
    assert started.payload["copied_entity_id"]
    assert "done at once" in started.message
    assert [s["kind"] for s in emulator.started("coze")] == ["copy"]


async def test_truewatch_export_and_import_start_tasks(
    emulator: EmulatorServer, call: Caller, tmp_path: Path
) -> None:
    hook = truewatch()
    export = await call(hook, "start_export", ())
    package = tmp_path / "ops.zip"
    package.write_bytes(resource_zip({"monitor": ["Disk full"], "dashboard": ["Ops"]}))
    imported = await call(hook, "start_import", (str(package),))
    assert export.task_id and imported.task_id and export.task_id != imported.task_id
    assert "TrueWatch import of 'ops.zip' started" in imported.message
    for _ in range(3):
        status = hook.get_task_status(imported.task_id)
    assert status.state is State.SUCCEEDED
    assert status.payload["import_info"]["successCount"] == 2
    assert [s["action"] for s in emulator.started("truewatch")] == ["export", "import"]


async def test_import_conflict_names_what_exists_and_the_option(
    emulator: EmulatorServer, call: Caller
) -> None:
    package = resource_zip({"monitor": ["CPU usage high"], "dashboard": ["Host overview"]})
    with pytest.raises(ImportConflictError) as caught:
        await call(truewatch(), "start_import", (package,))
    message = str(caught.value)
    assert "not started: resources already exist" in message
    assert (
        'monitors with the same name: ["CPU usage high"] (set repeat_name_op to skip, recover or continue)'
        in message
    )
    assert "set repeat_identifier_op to skip or recover" in message
    assert caught.value.kind is ErrorKind.BAD_REQUEST
    assert emulator.start_count("truewatch") == 0
    # The options the message names resolve it.
    started = await call(truewatch(), "start_import", (package, "skip", "recover"))
    assert started.task_id and emulator.start_count("truewatch") == 1
    assert emulator.requests("truewatch")[-1]["call"] == "start"


# -- bad input: refused before anything is sent -----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "args", "text"),
    [
        ("start_copy", ("", "workflow", None), "The entity_id is empty"),
        (
            "start_copy",
            ("wf-1", "plugin", None),
            "entity_type must be one of bot, app, workflow, got 'plugin'",
        ),
        ("start_copy", ("wf-1", "app", "   "), "The to_workspace_id is empty"),
    ],
)
async def test_bad_copy_arguments_send_nothing(
    emulator: EmulatorServer, call: Caller, method: str, args: tuple[Any, ...], text: str
) -> None:
    with pytest.raises(ValueError, match=text):
        await call(coze(), method, args)
    assert emulator.requests() == []


@pytest.mark.parametrize(
    ("file", "options", "error", "text"),
    [
        (b"not a zip", {}, ValueError, "the file is not a zip archive"),
        (
            "/nonexistent/ops.zip",
            {},
            TaskStatusError,
            "Cannot read the TrueWatch resource package '/nonexistent/ops.zip'",
        ),
        (
            resource_zip({"monitor": ["a"]}),
            {"repeat_name_op": "overwrite"},
            ValueError,
            "repeatNameOp must be one of check, skip, recover, continue",
        ),
        (
            resource_zip({"monitor": ["a"]}),
            {"repeat_identifier_op": "continue"},
            ValueError,
            "repeatIdentifierOp must be one of check, skip, recover",
        ),
        (
            resource_zip({"monitor": ["a"]}),
            {"repeat_ops": {"repeatEverything": "skip"}},
            ValueError,
            "Unknown TrueWatch import option",
        ),
    ],
)
async def test_bad_import_input_sends_nothing(
    emulator: EmulatorServer,
    call: Caller,
    file: Any,
    options: dict[str, Any],
    error: type[Exception],
    text: str,
) -> None:
    args = (
        file,
        options.get("repeat_name_op"),
        options.get("repeat_identifier_op"),
        options.get("repeat_ops"),
    )
    with pytest.raises(error, match=text):
        await call(truewatch(), "start_import", args)
    assert emulator.requests() == []


# -- failures: retried only where nothing was created --------------------------------------------------


@pytest.mark.parametrize(
    ("start", "created"),
    [
        ({"http_status": 503, "body": "<html>busy</html>"}, 0),
        ({"reset": True}, 0),
        ({"lost": True}, 1),
        ({"lost": True, "http_status": 502, "body": "bad gateway"}, 1),
        ({"lost": True, "delay": 3}, 1),
        ({"truncate": True}, 1),
    ],
    ids=["503", "reset", "lost", "lost-502", "lost-timeout", "truncated"],
)
async def test_a_start_that_may_have_arrived_is_never_retried(
    emulator: EmulatorServer, call: Caller, start: dict[str, Any], created: int
) -> None:
    """The client cannot tell these apart from "created": one request, UNCERTAIN, where to look."""
    emulator.plan_starts("coze", [{"start": start}])
    with pytest.raises(ApiError) as caught:
        await call(coze(), "start_copy", ("wf-1", "workflow", "7498204"))
    assert caught.value.kind is ErrorKind.UNCERTAIN
    assert not caught.value.retryable
    message = str(caught.value)
    assert message.startswith("Coze copy of workflow 'wf-1' to workspace 7498204 failed, and the request may")
    assert "check workspace 7498204 for a copy of the workflow before running this task again" in message
    assert len(starts(emulator, "coze", at_least=1)) == 1, "not retried"
    assert emulator.start_count("coze") == created


async def test_truewatch_uncertain_start_says_where_to_look(emulator: EmulatorServer, call: Caller) -> None:
    emulator.plan_starts("truewatch", [{"start": {"lost": True}}])
    with pytest.raises(
        ApiError, match="check the workspace's import and export tasks in the TrueWatch console"
    ):
        await call(truewatch(), "start_export", ())
    assert emulator.start_count("truewatch") == 1 and len(starts(emulator, "truewatch")) == 1


@pytest.mark.parametrize(
    ("api", "start"),
    [
        ("coze", {"code": 4020, "msg": "too many requests"}),
        ("coze", {"code": 4013, "msg": "rate limited"}),
        ("coze", {"http_status": 429, "body": "slow down"}),
        ("truewatch", {"errorCode": "ft.TriggerApiAkCurrentLimiting", "message": "limited"}),
    ],
)
async def test_a_rate_limited_start_is_retried_and_creates_one_task(
    emulator: EmulatorServer, call: Caller, api: str, start: dict[str, Any]
) -> None:
    """A refused start created nothing: retried (the account slows down first), one task in the end."""
    emulator.plan_starts(api, [{"start": start}])
    hook = coze() if api == "coze" else truewatch()
    args: tuple[Any, ...] = ("wf-1", "workflow", "7498204") if api == "coze" else ()
    started = await call(hook, "start_copy" if api == "coze" else "start_export", args)
    assert started.task_id
    assert [r["http_status"] for r in starts(emulator, api)][-1] == 200
    assert len(starts(emulator, api)) == 2
    assert emulator.start_count(api) == 1
    assert hook.get_endpoint().throttle.limits == 1, "the account slowed down"


async def test_rate_limits_on_start_give_up_after_max_retries(emulator: EmulatorServer, call: Caller) -> None:
    emulator.plan_starts("coze", [{"repeat": 5, "start": {"code": 4020, "msg": "too many requests"}}])
    with pytest.raises(ApiError) as caught:
        await call(coze(), "start_copy", ("wf-1", "workflow", None))
    assert caught.value.kind is ErrorKind.RATE_LIMITED
    assert len(starts(emulator, "coze")) == 3, "the first request and max_retries=2 retries"
    assert emulator.start_count("coze") == 0


@pytest.mark.parametrize(
    ("start", "kind", "text"),
    [
        ({"code": 4100, "msg": "token invalid"}, ErrorKind.AUTH, "check the API token"),
        ({"code": 4200, "msg": "entity not found"}, ErrorKind.NOT_FOUND, "check the entity id and type"),
        (
            {"code": 4000, "msg": "bad entity"},
            ErrorKind.BAD_REQUEST,
            "check entity_id, entity_type and to_workspace_id",
        ),
    ],
)
async def test_refused_starts_fail_at_once(
    emulator: EmulatorServer, call: Caller, start: dict[str, Any], kind: ErrorKind, text: str
) -> None:
    emulator.plan_starts("coze", [{"start": start}])
    with pytest.raises(ApiError, match=text) as caught:
        await call(coze(), "start_copy", ("wf-1", "workflow", None))
    assert caught.value.kind is kind
    assert len(starts(emulator, "coze")) == 1 and emulator.start_count("coze") == 0


async def test_bad_token_on_start_is_an_auth_error(emulator: EmulatorServer, call: Caller) -> None:
    with pytest.raises(ApiError) as caught:
        await call(CozeHook("coze_bad_token", request_policy=FAST), "start_copy", ("wf-1", "workflow", None))
    assert caught.value.kind is ErrorKind.AUTH
    assert "pat_wrong_token" not in str(caught.value)
    assert emulator.start_count() == 0


async def test_connection_refused_is_retried_it_sent_nothing(call: Caller) -> None:
    """Nothing listens on the port: the request never left, so retrying is safe (and done)."""
    hook = CozeHook("coze_unreachable", request_policy=FAST)
    with pytest.raises(ApiError) as caught:
        await call(hook, "start_copy", ("wf-1", "workflow", None))
    assert caught.value.kind is ErrorKind.TRANSIENT and caught.value.unsent
    assert "refused" in str(caught.value).lower()
