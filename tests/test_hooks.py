"""Hooks, sync and async, against the emulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from airflow_provider_taskstatus.compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
from airflow_provider_taskstatus.models.base import ApiError, ErrorKind, State, TaskStatus, TaskStatusError
from airflow_provider_taskstatus.transport.policy import RetryPolicy
from tests.conftest import BAD_COZE_TOKEN, BAD_TRUEWATCH_KEY

FAST = RetryPolicy(timeout=2, max_retries=2, backoff=0.01, max_backoff=0.05)
WEIRD_ID = "a/b?c#d ../e f&g=h+i"

Getter = Callable[[TaskStatusHook, str], Awaitable[TaskStatus]]


async def sync_get(hook: TaskStatusHook, task_id: str) -> TaskStatus:
    return hook.get_task_status(task_id)


async def async_get(hook: TaskStatusHook, task_id: str) -> TaskStatus:
    return await hook.aget_task_status(task_id)


@pytest.fixture(params=[sync_get, async_get], ids=["sync", "async"])
def get(request: pytest.FixtureRequest) -> Getter:
    getter: Getter = request.param
    return getter


async def test_coze_success(emulator: EmulatorServer, get: Getter) -> None:
    status = await get(CozeHook(request_policy=FAST), "demo-copy-workflow")
    assert status.state is State.SUCCEEDED
    assert status.payload["entity_type"] == "workflow"
    assert status.payload["task_status"] == "successful"
    assert status.request_id


async def test_coze_lifecycle_is_followed_poll_by_poll(emulator: EmulatorServer, get: Getter) -> None:
    hook = CozeHook(request_policy=FAST)
    states = [(await get(hook, "demo-copy-success")).state for _ in range(4)]
    assert states == [State.RUNNING] * 3 + [State.SUCCEEDED]


async def test_truewatch_success_and_partial(emulator: EmulatorServer, get: Getter) -> None:
    hook = TrueWatchHook(request_policy=FAST)
    emulator.set_task(
        "truewatch", "tw-ok", [{"status": "ok", "import_info": {"successCount": 3, "failCount": 0}}]
    )
    emulator.set_task(
        "truewatch", "tw-part", [{"status": "ok", "import_info": {"successCount": 3, "failCount": 1}}]
    )
    assert (await get(hook, "tw-ok")).state is State.SUCCEEDED
    partial = await get(hook, "tw-part")
    assert partial.state is State.PARTIAL
    assert partial.payload["import_info"]["failCount"] == 1


@pytest.mark.parametrize(
    ("hook_class", "conn_id", "secret"),
    [(CozeHook, "coze_bad_token", BAD_COZE_TOKEN), (TrueWatchHook, "truewatch_bad_key", BAD_TRUEWATCH_KEY)],
)
async def test_bad_secret_is_auth_error_after_one_request(
    emulator: EmulatorServer, get: Getter, hook_class: type[TaskStatusHook], conn_id: str, secret: str
) -> None:
    with pytest.raises(ApiError) as caught:
        await get(hook_class(conn_id, request_policy=FAST), "demo-copy-success")
    assert caught.value.kind is ErrorKind.AUTH
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)
    assert len(emulator.requests()) == 1, "a fatal error is never retried"


@pytest.mark.parametrize(
    ("api", "hook_class", "step", "kind"),
    [
        ("coze", CozeHook, {"code": 4000, "msg": "bad param"}, ErrorKind.BAD_REQUEST),
        ("coze", CozeHook, {"code": 4101, "msg": "no permission"}, ErrorKind.AUTH),
        ("coze", CozeHook, {"code": 4100, "msg": "wrong region", "http_status": 200}, ErrorKind.AUTH),
        ("truewatch", TrueWatchHook, {"errorCode": "ft.InvalidAPIKey", "message": "bad"}, ErrorKind.AUTH),
        ("truewatch", TrueWatchHook, {"errorCode": "ft.ParamError", "message": "x"}, ErrorKind.BAD_REQUEST),
    ],
)
async def test_fatal_errors_cost_one_request(
    emulator: EmulatorServer,
    get: Getter,
    api: str,
    hook_class: type[TaskStatusHook],
    step: dict[str, Any],
    kind: ErrorKind,
) -> None:
    emulator.set_task(api, "t-fatal", [step])
    with pytest.raises(ApiError) as caught:
        await get(hook_class(request_policy=FAST), "t-fatal")
    assert caught.value.kind is kind
    assert len(emulator.requests(task_id="t-fatal")) == 1


@pytest.mark.parametrize(
    ("hook_class", "task_id"), [(CozeHook, "no-such-task"), (TrueWatchHook, "no-such-task")]
)
async def test_unknown_task_is_not_found(
    emulator: EmulatorServer, get: Getter, hook_class: type[TaskStatusHook], task_id: str
) -> None:
    with pytest.raises(ApiError) as caught:
        await get(hook_class(request_policy=FAST), task_id)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert "check the" in str(caught.value)


@pytest.mark.parametrize(
    ("api", "hook_class", "fault", "done"),
    [
        ("coze", CozeHook, {"http_status": 503, "body": "<html>busy</html>"}, {"task_status": "successful"}),
        ("coze", CozeHook, {"reset": True}, {"task_status": "successful"}),
        ("coze", CozeHook, {"truncate": True, "task_status": "successful"}, {"task_status": "successful"}),
        ("truewatch", TrueWatchHook, {"http_status": 502, "body": "bad gateway"}, {"status": "ok"}),
    ],
    ids=["coze-503", "coze-reset", "coze-truncated", "tw-502"],
)
async def test_transient_errors_are_retried_within_one_call(
    emulator: EmulatorServer,
    get: Getter,
    api: str,
    hook_class: type[TaskStatusHook],
    fault: dict[str, Any],
    done: dict[str, Any],
) -> None:
    emulator.set_task(api, "t-flaky", [{**fault, "repeat": 2}, done])
    status = await get(hook_class(request_policy=FAST), "t-flaky")
    assert status.state is State.SUCCEEDED
    assert len(emulator.requests(task_id="t-flaky")) == 3


async def test_retry_budget_is_bounded(emulator: EmulatorServer, get: Getter) -> None:
    emulator.set_task("truewatch", "t-down", [{"http_status": 503, "body": "down"}])
    with pytest.raises(ApiError) as caught:
        await get(TrueWatchHook(request_policy=FAST), "t-down")
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert len(emulator.requests(task_id="t-down")) == FAST.max_retries + 1


@pytest.mark.parametrize(
    ("api", "hook_class", "fault"),
    [
        ("coze", CozeHook, {"code": 4013, "msg": "slow down"}),
        ("coze", CozeHook, {"code": 4020, "msg": "too many a minute"}),
        ("coze", CozeHook, {"code": 4008, "msg": "daily quota", "headers": {"Retry-After": "0"}}),
        ("truewatch", TrueWatchHook, {"errorCode": "ft.TriggerApiWorkspaceCurrentLimiting"}),
        ("truewatch", TrueWatchHook, {"errorCode": "ft.TriggerApiAkCurrentLimiting"}),
    ],
    ids=["coze-4013", "coze-4020", "coze-4008", "tw-workspace-401", "tw-key-401"],
)
async def test_a_rate_limit_is_not_retried_and_slows_the_account(
    emulator: EmulatorServer, get: Getter, api: str, hook_class: type[TaskStatusHook], fault: dict[str, Any]
) -> None:
    """One request, a RATE_LIMITED error (a TrueWatch one on HTTP 401 is not bad credentials), and
    the account's pace is cut: retrying at once would only add a request the server refuses too."""
    emulator.set_task(api, "t-limited", [fault])
    hook = hook_class(request_policy=FAST)
    with pytest.raises(ApiError) as caught:
        await get(hook, "t-limited")
    assert caught.value.kind is ErrorKind.RATE_LIMITED
    assert len(emulator.requests(task_id="t-limited")) == 1
    throttle = hook.get_endpoint().throttle
    assert throttle.limits == 1 and throttle.rate < float("inf")


def test_coze_daily_quota_and_system_limits_pause_the_account() -> None:
    """Without a Retry-After, 4008 (the day's quota) and 4009 (system-wide) pause the account; a
    per-minute 4020 does not (the pace slows instead)."""
    from airflow_provider_taskstatus.models.base import RawResponse
    from airflow_provider_taskstatus.models.coze import COZE

    def pause(code: int) -> float | None:
        body = json.dumps({"code": code, "msg": "limited", "detail": {"logid": "L"}}).encode()
        with pytest.raises(ApiError) as caught:
            COZE.interpret(RawResponse(429, {}, body), "t")
        assert caught.value.kind is ErrorKind.RATE_LIMITED
        return caught.value.retry_after

    assert pause(4008) == 300.0
    assert pause(4009) == 60.0
    assert pause(4020) is None


async def test_slow_answer_times_out_as_transient(emulator: EmulatorServer, get: Getter) -> None:
    emulator.set_task("coze", "t-slow", [{"task_status": "in_progress", "delay": 1.0}])
    policy = RetryPolicy(timeout=0.2, max_retries=0)
    with pytest.raises(ApiError) as caught:
        await get(CozeHook(request_policy=policy), "t-slow")
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert "within 0.2 s" in str(caught.value)


@pytest.mark.parametrize(("api", "hook_class"), [("coze", CozeHook), ("truewatch", TrueWatchHook)])
async def test_weird_ids_reach_the_server_encoded(
    emulator: EmulatorServer, get: Getter, api: str, hook_class: type[TaskStatusHook]
) -> None:
    step = {"task_status": "successful"} if api == "coze" else {"status": "ok"}
    emulator.set_task(api, WEIRD_ID, [step])
    status = await get(hook_class(request_policy=FAST), WEIRD_ID)
    assert status.state is State.SUCCEEDED
    [logged] = emulator.requests(task_id=WEIRD_ID)
    encoded = "a%2Fb%3Fc%23d%20..%2Fe%20f%26g%3Dh%2Bi"
    assert encoded in logged["raw_path"] + "?" + logged["query_string"]


@pytest.mark.parametrize("bad_id", ["", "   "])
async def test_empty_id_is_refused_before_any_request(
    emulator: EmulatorServer, get: Getter, bad_id: str
) -> None:
    with pytest.raises(ValueError, match="empty"):
        await get(CozeHook(), bad_id)
    assert emulator.requests() == []


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        (CozeHook("nowhere"), "Connection 'nowhere' is not defined: create a connection of type 'coze'"),
        (CozeHook("coze_no_token"), "has no secret: put the Coze API token in its password field"),
        (TrueWatchHook("truewatch_bad_site"), "Unknown TrueWatch site 'mars-1'"),
        (
            TrueWatchHook("coze_default"),
            "Connection 'coze_default' is of type 'coze', but TrueWatchHook needs a 'truewatch' connection",
        ),
        (CozeHook("truewatch_default"), "is of type 'truewatch', but CozeHook needs a 'coze' connection"),
    ],
)
async def test_connection_problems_say_what_to_fix(
    emulator: EmulatorServer, get: Getter, hook: TaskStatusHook, message: str
) -> None:
    with pytest.raises(TaskStatusError, match=message):
        await get(hook, "demo-copy-success")
    assert emulator.requests() == []


async def test_unreachable_host_is_transient_and_says_why(get: Getter) -> None:
    with pytest.raises(ApiError) as caught:
        await get(CozeHook("coze_unreachable", request_policy=RetryPolicy(max_retries=0)), "x")
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert str(caught.value).endswith("failed: Connection refused"), "the cause, not a class name"


@pytest.mark.parametrize("hook_class", [CozeHook, TrueWatchHook])
def test_hooks_are_built_the_way_airflow_builds_them(hook_class: type[TaskStatusHook]) -> None:
    """Connection.get_hook() calls HookClass(**{conn_name_attr: conn_id}); conn_id= keeps working."""
    assert hook_class(**{hook_class.conn_name_attr: "mine"}).conn_id == "mine"
    assert hook_class("mine").conn_id == hook_class(conn_id="mine").conn_id == "mine"
    assert hook_class().conn_id == hook_class.default_conn_name
    with pytest.raises(ValueError, match="differ"):
        hook_class("a", **{hook_class.conn_name_attr: "b"})
    with pytest.raises(TypeError, match="conn_name"):
        hook_class(conn_name="x")


@pytest.mark.parametrize(
    ("hook", "ok", "text"),
    [
        (CozeHook(), True, "accepted the API token"),
        (TrueWatchHook(), True, "accepted the API key (DF-API-KEY)"),
        (CozeHook("coze_bad_token"), False, "Coze API error 4100"),
        (TrueWatchHook("truewatch_bad_key"), False, "ft.InvalidAPIKey"),
        (TrueWatchHook("truewatch_bad_site"), False, "Unknown TrueWatch site"),
        (CozeHook("coze_unreachable"), False, "failed: Connection refused. Check the host"),
    ],
)
def test_test_connection(emulator: EmulatorServer, hook: TaskStatusHook, ok: bool, text: str) -> None:
    result, message = hook.test_connection()
    assert result is ok
    assert text in message
    assert BAD_COZE_TOKEN not in message and BAD_TRUEWATCH_KEY not in message


def test_sync_session_is_reused_across_calls(emulator: EmulatorServer) -> None:
    hook = CozeHook()
    session = hook.get_conn()
    hook.get_task_status("demo-copy-workflow")
    hook.get_task_status("demo-copy-workflow")
    assert hook.get_conn() is session
    peers = {r["conn"] for r in emulator.requests()}
    assert len(peers) == 1, f"both polls should share one kept-alive connection, saw {peers}"


async def test_async_calls_in_one_lease_share_a_connection(emulator: EmulatorServer) -> None:
    from airflow_provider_taskstatus.transport.aio import Lease

    hook = CozeHook()
    async with Lease():
        for _ in range(3):
            await hook.aget_task_status("demo-copy-workflow")
    peers = {r["conn"] for r in emulator.requests()}
    assert len(peers) == 1, f"polls should share one kept-alive connection, saw {peers}"


def test_hook_repr_and_endpoint_repr_hide_the_secret() -> None:
    hook = CozeHook("coze_bad_token")
    hook.get_endpoint()
    assert BAD_COZE_TOKEN not in repr(hook)
    assert BAD_COZE_TOKEN not in repr(hook.get_endpoint())
    assert BAD_COZE_TOKEN not in repr(vars(hook).get("_endpoint"))


@pytest.mark.parametrize(
    ("hook", "secret"),
    [(CozeHook("coze_bad_token"), BAD_COZE_TOKEN), (TrueWatchHook("truewatch_bad_key"), BAD_TRUEWATCH_KEY)],
)
def test_secret_is_registered_with_the_masker(hook: TaskStatusHook, secret: str) -> None:
    from airflow.providers.common.compat.sdk import redact

    hook.get_endpoint()
    assert secret not in str(redact(f"a log line with {secret} in it"))


class _LoopBlocked(BaseException):
    """Stands for the task SDK's ``DeadlockImminentError`` (a BaseException, so no ``except Exception``)."""


class _TriggererComms:
    """The triggerer's link to its supervisor, as strict as Airflow 3.3's: a synchronous send from the
    event loop's own thread raises (it would block the loop and every other trigger on it)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, msg: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a worker thread: blocking there is fine
            self.sent.append(msg)
            return
        raise _LoopBlocked(f"synchronous {type(msg).__name__} on the event loop")

    async def asend(self, msg: Any) -> None:
        self.sent.append(msg)


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 2's triggerer has no supervisor link")
@pytest.mark.parametrize("hook_class", [CozeHook, TrueWatchHook])
async def test_async_connection_never_blocks_the_triggerer_loop(
    monkeypatch: pytest.MonkeyPatch, hook_class: type[TaskStatusHook]
) -> None:
    """Reading the connection in a trigger masks its secret without a synchronous call to the supervisor.

    On every release: ``aget_connection`` is missing before 3.1 and masks synchronously until 3.3.2.
    """
    from airflow.sdk.execution_time import task_runner

    comms = _TriggererComms()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    endpoint = await hook_class().aget_endpoint()
    assert endpoint.base_url.startswith("http://127.0.0.1")
    masked = [getattr(msg, "value", None) for msg in comms.sent]
    # Airflow masks a connection's extra too (a dict): the secret is among the strings.
    secrets = [value for value in masked if isinstance(value, str) and value]
    assert any(value in str(endpoint.credentials.headers) for value in secrets), "the secret was masked"


def test_console_url_from_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A private deployment names its console in the extra; a wrong value says what to write."""
    base = {"conn_type": "truewatch", "host": "http://127.0.0.1:9", "password": "k"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_TW_CONSOLE", json.dumps({**base, "extra": {"console_url": "https://c.example/"}})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_TW_BAD_CONSOLE", json.dumps({**base, "extra": {"console_url": "c.example"}})
    )
    assert TrueWatchHook("tw_console").get_endpoint().console_url == "https://c.example"
    with pytest.raises(TaskStatusError, match="extra console_url must be an http\\(s\\) URL such as"):
        TrueWatchHook("tw_bad_console").get_endpoint()
