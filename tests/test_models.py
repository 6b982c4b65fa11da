"""The status models, row by row of the outcome table: pure functions, no I/O."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from airflow_provider_taskstatus.models.base import (
    ApiError,
    ErrorKind,
    RawResponse,
    State,
    TaskStatus,
    encode,
    validate_task_id,
)
from airflow_provider_taskstatus.models.coze import COZE
from airflow_provider_taskstatus.models.hosts import normalize_base_url
from airflow_provider_taskstatus.models.outcome import PollTracker, judge
from airflow_provider_taskstatus.models.truewatch import SITES, TRUEWATCH


def raw(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> RawResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RawResponse(status, headers or {}, data)


def coze(task_status: str | None = None, code: int = 0, status: int = 200, **data: Any) -> RawResponse:
    payload = {"task_id": "t1", "entity_type": "bot", **data}
    if task_status is not None:
        payload["task_status"] = task_status
    return raw(
        {
            "code": code,
            "msg": "" if code == 0 else "boom",
            "data": payload if code == 0 else None,
            "detail": {"logid": "LOG123"},
        },
        status,
    )


def truewatch(status: str, **content: Any) -> RawResponse:
    body = {
        "code": 200,
        "content": {"status": status, "action": "import", **content},
        "errorCode": "",
        "message": "",
        "success": True,
        "traceId": "TRACE-1",
    }
    return raw(body)


def tw_error(error_code: str, http_status: int) -> RawResponse:
    return raw(
        {
            "code": http_status,
            "content": None,
            "errorCode": error_code,
            "message": "nope",
            "success": False,
            "traceId": "TRACE-2",
        },
        http_status,
    )


# -- outcome table: remote status → state → Airflow verdict ------------------------------------


@pytest.mark.parametrize(
    ("response", "state", "verdict"),
    [
        (coze("in_progress"), State.RUNNING, None),
        (coze("successful"), State.SUCCEEDED, "success"),
        (coze("failed"), State.FAILED, "failed"),
        (coze("paused_by_aliens"), State.UNKNOWN, None),
    ],
    ids=["in_progress", "successful", "failed", "unknown"],
)
def test_coze_status_rows(response: RawResponse, state: State, verdict: str | None) -> None:
    status = COZE.interpret(response, "t1")
    assert status.state is state
    assert status.payload["task_id"] == "t1"
    assert status.request_id == "LOG123"
    assert judge(status).status == verdict


@pytest.mark.parametrize(
    ("response", "state", "verdict", "partial_verdict"),
    [
        (truewatch("start"), State.RUNNING, None, None),
        (truewatch("running"), State.RUNNING, None, None),
        (
            truewatch("ok", import_info={"successCount": 12, "failCount": 0}),
            State.SUCCEEDED,
            "success",
            "success",
        ),
        (
            truewatch("ok", import_info={"successCount": 10, "failCount": 2}),
            State.PARTIAL,
            "failed",
            "success",
        ),
        (
            truewatch("ok", action="export", import_info={"exportFailedInfo": [{"name": "cpu"}]}),
            State.PARTIAL,
            "failed",
            "success",
        ),
        (truewatch("error", errorCode="ft.X", message="bad zip"), State.FAILED, "failed", "failed"),
        (truewatch("cancel"), State.CANCELLED, "failed", "failed"),
        (truewatch("exploded"), State.UNKNOWN, None, None),
    ],
    ids=["start", "running", "ok", "ok-failCount", "ok-exportFailedInfo", "error", "cancel", "unknown"],
)
def test_truewatch_status_rows(
    response: RawResponse, state: State, verdict: str | None, partial_verdict: str | None
) -> None:
    status = TRUEWATCH.interpret(response, "task_1")
    assert status.state is state
    assert status.request_id == "TRACE-1"
    assert judge(status).status == verdict
    assert judge(status, allow_partial=True).status == partial_verdict


def test_coze_failure_message_names_every_reason_and_logid() -> None:
    reasons = [
        {
            "entity_id": "111",
            "entity_name": "单词学习助手",
            "entity_type": "plugin",
            "failed_reason": "资源配额不足",
        },
        {"entity_id": "222", "entity_name": "kb", "entity_type": "knowledge", "failed_reason": "too big"},
    ]
    message = judge(COZE.interpret(coze("failed", failed_reasons=reasons), "t1")).message
    for part in (
        "plugin '单词学习助手' (id 111): 资源配额不足",
        "knowledge 'kb' (id 222): too big",
        "logid: LOG123",
    ):
        assert part in message


def test_truewatch_messages_name_error_code_counts_and_trace_id() -> None:
    failed = judge(TRUEWATCH.interpret(truewatch("error", errorCode="ft.Bad", message="bad zip"), "x"))
    assert "errorCode ft.Bad: bad zip" in failed.message and "traceId: TRACE-1" in failed.message
    partial = judge(
        TRUEWATCH.interpret(truewatch("ok", import_info={"successCount": 10, "failCount": 2}), "x")
    )
    assert "2 resource(s) failed, 10 succeeded" in partial.message and "allow_partial=True" in partial.message
    accepted = judge(
        TRUEWATCH.interpret(truewatch("ok", import_info={"failCount": 2}), "x"), allow_partial=True
    )
    assert accepted.warning
    assert "cancelled" in judge(TRUEWATCH.interpret(truewatch("cancel"), "x")).message


# -- API errors: kind by body code first, HTTP status second ------------------------------------


@pytest.mark.parametrize(
    ("code", "http_status", "kind"),
    [
        (4000, 400, ErrorKind.BAD_REQUEST),
        (4100, 401, ErrorKind.AUTH),
        (4101, 403, ErrorKind.AUTH),
        (4200, 404, ErrorKind.NOT_FOUND),
        (4013, 429, ErrorKind.RATE_LIMITED),
        (4013, 200, ErrorKind.RATE_LIMITED),
        (4100, 200, ErrorKind.AUTH),
        (5000, 200, ErrorKind.TRANSIENT),
        (4999, 200, ErrorKind.BAD_REQUEST),
        (4999, 503, ErrorKind.TRANSIENT),
    ],
)
def test_coze_error_codes(code: int, http_status: int, kind: ErrorKind) -> None:
    with pytest.raises(ApiError) as caught:
        COZE.interpret(coze(code=code, status=http_status), "t1")
    assert caught.value.kind is kind
    assert f"Coze API error {code}" in str(caught.value)
    assert "logid: LOG123" in str(caught.value)


@pytest.mark.parametrize(
    ("error_code", "http_status", "kind"),
    [
        ("ft.InvalidAPIKey", 403, ErrorKind.AUTH),
        ("ft.InvalidAPIKey", 401, ErrorKind.AUTH),
        ("ft.TriggerApiAkCurrentLimiting", 401, ErrorKind.RATE_LIMITED),
        ("ft.TriggerApiWorkspaceCurrentLimiting", 401, ErrorKind.RATE_LIMITED),
        ("ft.TaskNotFound", 404, ErrorKind.NOT_FOUND),
        ("ft.ParamError", 400, ErrorKind.BAD_REQUEST),
        ("ft.Internal", 500, ErrorKind.TRANSIENT),
    ],
)
def test_truewatch_error_codes(error_code: str, http_status: int, kind: ErrorKind) -> None:
    with pytest.raises(ApiError) as caught:
        TRUEWATCH.interpret(tw_error(error_code, http_status), "x")
    assert caught.value.kind is kind
    assert error_code in str(caught.value) and "traceId: TRACE-2" in str(caught.value)


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (raw(b"<html>502 Bad Gateway</html>", 502), ErrorKind.TRANSIENT),
        (raw(b"<html>oops</html>", 200), ErrorKind.TRANSIENT),
        (raw(b'{"code": 0, "data": {"task_st', 200), ErrorKind.TRANSIENT),
        (raw(b"Too many", 429, {"Retry-After": "7"}), ErrorKind.RATE_LIMITED),
        (raw(b"denied", 403), ErrorKind.AUTH),
        (raw({"code": 0, "msg": "", "data": {}}), ErrorKind.TRANSIENT),
    ],
    ids=["html-502", "html-200", "truncated", "429-retry-after", "403-plain", "no-task-status"],
)
def test_unusable_bodies(response: RawResponse, kind: ErrorKind) -> None:
    for api in (COZE, TRUEWATCH):
        with pytest.raises(ApiError) as caught:
            api.interpret(response, "t1")
        assert caught.value.kind is kind
        if response.status == 429:
            assert caught.value.retry_after == 7.0


def test_logid_from_header_when_body_has_none() -> None:
    with pytest.raises(ApiError) as caught:
        COZE.interpret(raw(b"<html>bad gateway</html>", 502, {"X-Tt-Logid": "HDRLOG"}), "t1")
    assert "logid: HDRLOG" in str(caught.value)


# -- requests: ids, URLs, headers ---------------------------------------------------------------


def test_task_ids_are_one_encoded_segment_or_value() -> None:
    nasty = "a/b?c#d ../e&f=g+h"
    assert COZE.status_path(nasty) == "/v1/entities/copy_tasks/a%2Fb%3Fc%23d%20..%2Fe%26f%3Dg%2Bh"
    assert TRUEWATCH.status_path(nasty).endswith("?taskId=a%2Fb%3Fc%23d%20..%2Fe%26f%3Dg%2Bh")
    assert encode("7530938808750080") == "7530938808750080"


@pytest.mark.parametrize("bad", ["", "   ", None, ".", "..", "a\nb", True, ["x"]])
def test_bad_task_ids_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="task id"):
        validate_task_id(bad)


def test_numeric_task_id_is_accepted_as_text() -> None:
    assert validate_task_id(567456700) == "567456700"


def test_base_urls() -> None:
    assert COZE.base_url(None, None, {}) == "https://api.coze.cn"
    assert COZE.base_url("api.coze.com", None, {}) == "https://api.coze.com"
    assert COZE.base_url("http://127.0.0.1", 8765, {}) == "http://127.0.0.1:8765"
    assert TRUEWATCH.base_url(None, None, {}) == "https://openapi.truewatch.com"
    assert TRUEWATCH.base_url(None, None, {"site": "guance-cn4"}) == "https://cn4-openapi.guance.com"
    assert TRUEWATCH.base_url("openapi.corp.internal", None, {}) == "https://openapi.corp.internal"
    assert len(SITES) == 19


@pytest.mark.parametrize(
    ("host", "extra", "message"),
    [
        (None, {"site": "mars-1"}, "Unknown TrueWatch site 'mars-1': choose one of truewatch,"),
        ("openapi.corp.internal", {"site": "guance"}, "both host"),
        ("ftp://x", {}, "scheme 'ftp'"),
        ("https://gw.example/guance/api/v1", {}, "ends with '/api/v1', the start of the API's own path"),
    ],
)
def test_bad_endpoints_say_what_to_fix(host: str | None, extra: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TRUEWATCH.base_url(host, None, extra)


def test_normalize_keeps_explicit_port() -> None:
    assert normalize_base_url("http://127.0.0.1:9000", 1234) == "http://127.0.0.1:9000"


def test_auth_headers() -> None:
    assert COZE.auth_headers("pat_x")["Authorization"] == "Bearer pat_x"
    assert TRUEWATCH.auth_headers("k") == {"DF-API-KEY": "k"}


# -- poll tracker: failure budget and unknown-status warnings -----------------------------------


def test_tracker_budget_resets_on_clean_poll(caplog: pytest.LogCaptureFixture) -> None:
    tracker = PollTracker(allow_partial=False, max_consecutive_failures=3, log=logging.getLogger("t"))
    transient = ApiError(ErrorKind.TRANSIENT, "503")
    running = TaskStatus(State.RUNNING, "running", "still going")
    assert not tracker.on_error(transient).done
    assert not tracker.on_error(transient).done
    assert not tracker.on_status(running).done
    assert not tracker.on_error(transient).done
    assert not tracker.on_error(transient).done
    final = tracker.on_error(transient)
    assert final.done and final.status == "error" and "3 consecutive failed polls" in final.message


def test_tracker_fatal_error_ends_at_once() -> None:
    tracker = PollTracker(allow_partial=False, max_consecutive_failures=5, log=logging.getLogger("t"))
    verdict = tracker.on_error(ApiError(ErrorKind.AUTH, "bad token"))
    assert verdict.done and verdict.status == "error" and verdict.message == "bad token"


def test_tracker_warns_once_per_unknown_value(caplog: pytest.LogCaptureFixture) -> None:
    tracker = PollTracker(allow_partial=False, max_consecutive_failures=5, log=logging.getLogger("t"))
    with caplog.at_level(logging.WARNING):
        for value in ("weird", "weird", "weird", "odd"):
            assert not tracker.on_status(TaskStatus(State.UNKNOWN, value, f"is {value}")).done
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "'weird'" in warnings[0] and "'odd'" in warnings[1]


@pytest.mark.parametrize(
    ("api", "base_url", "console"),
    [
        (COZE, "https://api.coze.cn", "https://www.coze.cn"),
        (COZE, "https://api.coze.com", "https://www.coze.com"),
        (COZE, "https://gw.example/coze", None),
        (TRUEWATCH, "https://openapi.truewatch.com", "https://console.truewatch.com"),
        (TRUEWATCH, "https://us1-openapi.guance.com", "https://us1-console.guance.com"),
        (TRUEWATCH, "https://cn6-openapi.guance.one:443", "https://cn6-console.guance.one"),
        (TRUEWATCH, "http://127.0.0.1:8765", None),
    ],
)
def test_console_of_public_hosts(api: Any, base_url: str, console: str | None) -> None:
    """The extra links' console: known for public hosts, not guessed for any other."""
    assert api.console_url(base_url) == console
