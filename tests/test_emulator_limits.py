"""The emulator's request budgets (TrueWatch per key / per workspace, Coze per token) and timed steps.

Over real loopback HTTP; windows of about a second keep the sliding tests fast. The limiter and the
step clock also take an explicit time, which the pure tests use instead of sleeping.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_taskstatus.emulator import (
    DEFAULT_COZE_TOKEN,
    DEFAULT_TRUEWATCH_KEY,
    EmulatorServer,
    RateLimits,
)
from airflow_provider_taskstatus.emulator.cli import _parser, rate_limits
from airflow_provider_taskstatus.emulator.limits import DEFAULT_WORKSPACE, RateLimiter
from airflow_provider_taskstatus.emulator.scripts import Task

TW_PATH = "/api/v1/workspace/resource/query_action_status"
AK_LIMIT = "ft.TriggerApiAkCurrentLimiting"
WS_LIMIT = "ft.TriggerApiWorkspaceCurrentLimiting"
UNLIMITED = {
    "truewatch_per_key": None,
    "truewatch_per_workspace": None,
    "coze_per_token": None,
    "window": 60.0,
    "workspaces": {},
}


def tw(server: EmulatorServer, task_id: str | None = "demo-cancel", key: str = DEFAULT_TRUEWATCH_KEY) -> Any:
    """The JSON body of a TrueWatch status answer (if JSON), with its HTTP status under ``"_http"``."""
    params = {} if task_id is None else {"taskId": task_id}
    r = requests.get(server.base_url + TW_PATH, params=params, headers={"DF-API-KEY": key}, timeout=5)
    is_json = r.headers["Content-Type"].startswith("application/json")
    return {**(r.json() if is_json else {}), "_http": r.status_code}


def coze(server: EmulatorServer, task_id: str = "demo-copy-workflow", token: str = DEFAULT_COZE_TOKEN) -> Any:
    url = f"{server.base_url}/v1/entities/copy_tasks/{task_id}"
    r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    return {**r.json(), "_http": r.status_code, "_logid": r.headers.get("x-tt-logid")}


def tw_codes(server: EmulatorServer, n: int, key: str = DEFAULT_TRUEWATCH_KEY) -> list[str]:
    """The ``errorCode`` of ``n`` answers: ``""`` for an accepted request."""
    return [tw(server, key=key)["errorCode"] for _ in range(n)]


def control(server: EmulatorServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{server.base_url}/_emulator/{path}", timeout=5, **kwargs)


@pytest.fixture
def limited(emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    """The session emulator, reset again afterwards so no budget outlives the test."""
    yield emulator
    emulator.reset()


@pytest.fixture
def three_keys() -> Iterator[EmulatorServer]:
    """Keys k1 and k2 share the default workspace; k3 has a workspace of its own."""
    limits = RateLimits(truewatch_per_key=2, truewatch_per_workspace=3, workspaces={"k3": "wksp_other"})
    with EmulatorServer(truewatch_keys=["k1", "k2", "k3"], rate_limits=limits) as server:
        yield server


# --- TrueWatch -----------------------------------------------------------------------------------


def test_unlimited_by_default(emulator: EmulatorServer) -> None:
    assert emulator.rate_limits == RateLimits()
    assert tw_codes(emulator, 30) == [""] * 30
    assert control(emulator, "GET", "limits").json() == UNLIMITED


def test_per_key_limit_answers_401_with_the_documented_error_code(limited: EmulatorServer) -> None:
    limited.set_rate_limits(RateLimits(truewatch_per_key=2))
    assert tw_codes(limited, 2) == ["", ""]
    body = tw(limited)
    assert body["_http"] == 401
    assert (body["code"], body["success"], body["content"], body["errorCode"]) == (401, False, None, AK_LIMIT)
    assert body["message"] == "API key rate limit exceeded (2 requests per 60 s)"
    assert body["traceId"]
    assert [e["limited"] for e in limited.requests()] == [None, None, "key"]


def test_workspace_limit_spans_keys_and_the_key_limit_is_checked_first(three_keys: EmulatorServer) -> None:
    assert tw_codes(three_keys, 2, key="k1") == ["", ""]
    assert tw_codes(three_keys, 1, key="k1") == [AK_LIMIT], "k1 is over its own budget: that is said first"
    assert tw_codes(three_keys, 1, key="k2") == [""], "the workspace's third request"
    body = tw(three_keys, key="k2")
    assert (body["_http"], body["errorCode"]) == (401, WS_LIMIT)
    assert body["message"] == "workspace rate limit exceeded (3 requests per 60 s)"
    assert tw_codes(three_keys, 2, key="k3") == ["", ""], "another workspace has its own budget"
    assert [e["limited"] for e in three_keys.requests()] == [None, None, "key", None, "workspace", None, None]


def test_rejected_requests_are_not_counted_and_the_window_slides(limited: EmulatorServer) -> None:
    limited.set_rate_limits(RateLimits(truewatch_per_key=2, window=1.0))
    start = time.monotonic()
    assert tw_codes(limited, 2) == ["", ""]
    time.sleep(max(0.0, start + 0.5 - time.monotonic()))
    assert tw_codes(limited, 3) == [AK_LIMIT] * 3  # at ~0.5 s: in the window until ~1.5 s if counted
    time.sleep(max(0.0, start + 1.15 - time.monotonic()))
    assert tw_codes(limited, 3) == ["", "", AK_LIMIT], (
        "the accepted pair left the window; the refusals never counted"
    )


def test_a_refused_request_consumes_no_step_and_skips_the_task_lookup(limited: EmulatorServer) -> None:
    limited.set_task("truewatch", "t", [{"status": "start"}, {"status": "running"}, {"status": "ok"}])
    limited.inject_faults("truewatch", [{"http_status": 503}])
    limited.set_rate_limits(RateLimits(truewatch_per_key=1, window=0.5))
    assert tw(limited, "t")["_http"] == 503, "the fault answers the first accepted request"
    assert tw(limited, "t")["errorCode"] == AK_LIMIT
    assert tw(limited, "no-such-task")["errorCode"] == AK_LIMIT, "answered before the lookup: no 404"
    assert tw(limited, None)["errorCode"] == AK_LIMIT, "no taskId: still spent the budget first"
    time.sleep(0.55)
    assert tw(limited, "t")["content"]["status"] == "start", "neither the fault nor the task lost a step"
    time.sleep(0.55)
    assert tw(limited, "t")["content"]["status"] == "running"


def test_unauthenticated_requests_are_neither_limited_nor_counted(limited: EmulatorServer) -> None:
    limited.set_rate_limits(RateLimits(truewatch_per_key=1, truewatch_per_workspace=1, coze_per_token=1))
    for _ in range(3):
        assert tw(limited, key="wrong")["errorCode"] == "ft.InvalidAPIKey"
        assert coze(limited, token="wrong")["code"] == 4100
    assert tw(limited)["errorCode"] == ""
    assert coze(limited)["code"] == 0


# --- Coze ----------------------------------------------------------------------------------------


def test_coze_per_token_limit_answers_429_code_4020() -> None:
    limits = RateLimits(coze_per_token=1, truewatch_per_key=1)
    with EmulatorServer(coze_tokens=["pat_a", "pat_b"], rate_limits=limits) as server:
        assert coze(server, token="pat_a")["code"] == 0
        body = coze(server, token="pat_a")
        assert (body["_http"], body["code"], body["data"]) == (429, 4020, None)
        assert body["msg"] == "requests per minute exceeded: this token may make 1 requests per 60 s"
        assert body["detail"]["logid"] == body["_logid"]
        assert coze(server, token="pat_b")["code"] == 0, "each token has its own budget"
        assert tw(server)["errorCode"] == "", "the APIs' budgets are separate"
        assert [e["limited"] for e in server.requests(api="coze")] == [None, "key", None]


@pytest.mark.parametrize("code", [4008, 4009, 4020])
def test_scripted_coze_rate_limit_codes_answer_429(emulator: EmulatorServer, code: int) -> None:
    emulator.set_task("coze", "t", [{"code": code}])
    assert coze(emulator, "t")["_http"] == 429


# --- stats, log, secrets -------------------------------------------------------------------------


def test_stats_and_log_count_rejections_without_credentials(three_keys: EmulatorServer) -> None:
    with EmulatorServer(coze_tokens=["pat_SECRET"], rate_limits=RateLimits(coze_per_token=0)) as coze_server:
        assert coze(coze_server, token="pat_SECRET")["code"] == 4020, "0 refuses every request"
        assert "pat_SECRET" not in control(coze_server, "GET", "requests").text
    for key in ("k1", "k1", "k1", "k2", "k2"):
        tw(three_keys, key=key)
    stats = control(three_keys, "GET", "stats").json()
    assert (stats["requests"], stats["rejected"]) == (5, 2)
    assert stats["rejected_by_api"] == {"truewatch": 2}
    assert stats["rejected_by_limit"] == {"key": 1, "workspace": 1}
    assert stats["by_status"] == {"200": 3, "401": 2}
    assert three_keys.stats() == stats
    log = control(three_keys, "GET", "requests").text
    assert '"limited": "workspace"' in log
    assert '"k1"' not in log
    assert '"k2"' not in log


# --- configuration -------------------------------------------------------------------------------


def test_control_endpoint_sets_and_reads_the_budgets(limited: EmulatorServer) -> None:
    body = {"truewatch_per_key": 1, "coze_per_token": 2, "window": 30, "workspaces": {"k9": "w9"}}
    r = control(limited, "POST", "limits", json=body)
    assert r.status_code == 200
    expected = {**UNLIMITED, **body, "window": 30.0}
    assert r.json() == expected
    assert control(limited, "GET", "limits").json() == expected
    assert limited.rate_limits.workspace_of("k9") == "w9"
    assert limited.rate_limits.workspace_of("other") == DEFAULT_WORKSPACE
    assert tw_codes(limited, 2) == ["", AK_LIMIT]
    # A new configuration replaces the whole one and starts from empty windows.
    assert control(limited, "POST", "limits", json={"truewatch_per_key": 1}).json()["coze_per_token"] is None
    assert tw_codes(limited, 2) == ["", AK_LIMIT]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"truewatch_per_keys": 20},
            "limits: unknown key 'truewatch_per_keys' (did you mean 'truewatch_per_key' or 'truewatch_per_workspace'?); "
            "known keys: "
            "coze_per_token, truewatch_per_key, truewatch_per_workspace, window, workspaces",
        ),
        (
            {"truewatch_per_key": -1},
            "truewatch_per_key must be a non-negative integer or null (unlimited), got -1",
        ),
        (
            {"coze_per_token": "20"},
            "coze_per_token must be a non-negative integer or null (unlimited), got '20'",
        ),
        ({"truewatch_per_workspace": True}, "truewatch_per_workspace must be a non-negative integer or null"),
        ({"truewatch_per_key": 1.5}, "truewatch_per_key must be a non-negative integer or null"),
        ({"window": 0}, "window must be a positive number of seconds, got 0"),
        ({"window": "60"}, "window must be a positive number of seconds, got '60'"),
        ({"workspaces": ["k"]}, "workspaces must map TrueWatch keys to non-empty workspace names (strings)"),
        ({"workspaces": {"k": ""}}, "workspaces must map TrueWatch keys to non-empty workspace names"),
        ([], "body must be a JSON object"),
        (None, "the body must be JSON, and it is empty"),
    ],
)
def test_control_endpoint_refuses_what_it_cannot_use(limited: EmulatorServer, body: Any, error: str) -> None:
    limited.set_rate_limits(RateLimits(coze_per_token=5))
    r = (
        control(limited, "POST", "limits", json=body)
        if body is not None
        else control(limited, "POST", "limits")
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith(error)
    assert limited.rate_limits == RateLimits(coze_per_token=5), "a refused configuration changes nothing"


def test_python_configuration_and_the_query_are_checked_too(emulator: EmulatorServer) -> None:
    with pytest.raises(ValueError, match=r"^window must be a positive number of seconds, got -1$"):
        RateLimits(window=-1)
    r = control(emulator, "GET", "limits", params={"x": "1"})
    assert (r.status_code, r.json()["error"]) == (
        400,
        "query of /_emulator/limits: unknown key 'x'; known keys: none",
    )


def test_reset_restores_the_initial_budgets_and_empties_the_windows() -> None:
    with EmulatorServer(rate_limits=RateLimits(truewatch_per_key=1)) as server:
        assert tw_codes(server, 2) == ["", AK_LIMIT]
        server.set_rate_limits(None)
        assert tw_codes(server, 2) == ["", ""]
        assert control(server, "POST", "reset").status_code == 200
        assert server.rate_limits == RateLimits(truewatch_per_key=1)
        assert tw_codes(server, 2) == ["", AK_LIMIT], "the window started empty again"
        assert server.stats()["rejected"] == 1


def test_limiter_slides_with_an_explicit_clock() -> None:
    now = [100.0]
    limiter = RateLimiter(RateLimits(truewatch_per_key=2, window=10), clock=lambda: now[0])

    def admit_at(t: float) -> str | None:
        now[0] = t
        refused = limiter.admit("truewatch", "k")
        return None if refused is None else refused.scope

    assert [admit_at(t) for t in (100, 101, 102, 109.9)] == [None, None, "key", "key"]
    assert admit_at(110) is None, "the request at 100 left the window at 110 exactly"
    assert admit_at(110.5) == "key"
    assert admit_at(111) is None
    limiter.clear()
    assert [admit_at(111.1), admit_at(111.2), admit_at(111.3)] == [None, None, "key"]


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_flags_build_the_budgets() -> None:
    args = _parser().parse_args(
        [
            "--truewatch-rate-limit",
            "20",
            "--truewatch-workspace-rate-limit",
            "200",
            "--coze-rate-limit",
            "0",
            "--rate-window",
            "1.5",
            "--truewatch-workspace",
            "k1=w1",
            "--truewatch-workspace",
            "k2=w2",
        ]
    )
    assert rate_limits(args) == RateLimits(20, 200, 0, 1.5, {"k1": "w1", "k2": "w2"})
    assert rate_limits(_parser().parse_args([])) == RateLimits()
    assert RateLimits(20, 200, 0, 1.5).describe() == "truewatch 20/key 200/workspace, coze 0/token per 1.5 s"


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (
            ["--truewatch-rate-limit", "-1"],
            "argument --truewatch-rate-limit: must be a non-negative integer, got '-1'",
        ),
        (
            ["--coze-rate-limit", "lots"],
            "argument --coze-rate-limit: must be a non-negative integer, got 'lots'",
        ),
        (["--rate-window", "0"], "argument --rate-window: must be a positive number of seconds, got '0'"),
        (["--rate-window", "inf"], "argument --rate-window: must be a positive number of seconds, got 'inf'"),
        (["--truewatch-workspace", "k1"], "argument --truewatch-workspace: must be KEY=WORKSPACE, got 'k1'"),
    ],
)
def test_cli_refuses_bad_flag_values(
    capsys: pytest.CaptureFixture[str], flags: list[str], error: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(flags)
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(f"taskstatus-emulator: error: {error}\n")


def test_cli_serves_with_the_budgets() -> None:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "airflow_provider_taskstatus.emulator", "--port", "0", "--quiet"]
    cmd += ["--truewatch-rate-limit", "1", "--rate-window", "60"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.rstrip().endswith("| limits: truewatch 1/key per 60 s")
            url = line.split()[2]
            headers = {"DF-API-KEY": DEFAULT_TRUEWATCH_KEY}
            answers = [
                requests.get(url + TW_PATH, params={"taskId": "demo-cancel"}, headers=headers, timeout=5)
                for _ in range(2)
            ]
            codes = [a.json()["errorCode"] for a in answers]
            assert codes == ["", AK_LIMIT]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


# --- time-based steps ----------------------------------------------------------------------------


def test_timed_step_counts_from_its_first_answer_not_from_when_it_was_scripted() -> None:
    task = Task("truewatch", "t", [{"status": "running", "seconds": 45}, {"status": "ok"}])
    assert [task.advance(now=t)["status"] for t in (1000, 1001, 1044.9, 1045, 2000)] == [
        "running",
        "running",
        "running",
        "ok",
        "ok",
    ]
    assert [(c["step"], c["status"]) for c in task.changes] == [(0, "running"), (1, "ok")]
    assert task.length is None


def test_timed_steps_over_http_and_when_the_status_changed(emulator: EmulatorServer) -> None:
    steps = [{"status": "start"}, {"status": "running", "seconds": 0.4}, {"status": "ok"}]
    emulator.set_task("truewatch", "t", steps)
    before = time.time()
    statuses = [tw(emulator, "t")["content"]["status"] for _ in range(3)]
    assert statuses == ["start", "running", "running"]
    time.sleep(0.45)
    assert tw(emulator, "t")["content"]["status"] == "ok"
    changes = emulator.task_changes("truewatch", "t")
    assert [(c["step"], c["status"]) for c in changes] == [(0, "start"), (1, "running"), (2, "ok")]
    assert before <= changes[0]["time"] <= changes[1]["time"]
    assert changes[2]["time"] - changes[1]["time"] >= 0.4
    assert changes[1]["answer"] == {"status": "running", "seconds": 0.4}
    assert control(emulator, "GET", "changes", params={"api": "truewatch", "task_id": "t"}).json() == changes


def test_changes_endpoint_and_method_refuse_unknown_tasks(emulator: EmulatorServer) -> None:
    with pytest.raises(KeyError):
        emulator.task_changes("coze", "nope")
    assert control(emulator, "GET", "changes", params={"api": "coze", "task_id": "nope"}).status_code == 404
    r = control(emulator, "GET", "changes", params={"api": "dbt", "task_id": "t"})
    assert (r.status_code, r.json()["error"]) == (400, "api must be one of ['coze', 'truewatch'], got 'dbt'")
    assert control(emulator, "GET", "changes", params={"api": "coze"}).status_code == 400
    assert control(emulator, "GET", "changes", params={"api": "coze", "task": "t"}).status_code == 400
    assert emulator.task_changes("coze", "demo-copy-success") == [], "not polled yet"


def test_timed_global_faults_give_way_to_the_scripts(emulator: EmulatorServer) -> None:
    r = control(
        emulator, "POST", "faults", json={"api": "coze", "steps": [{"http_status": 503, "seconds": 0.3}]}
    )
    assert (r.status_code, r.json()) == (201, {"api": "coze", "requests": None})
    assert [coze_status(emulator) for _ in range(3)] == [503] * 3
    time.sleep(0.35)
    assert coze_status(emulator) == 200
    assert [c["status"] for c in emulator.task_changes("coze", "*")] == [None]


def coze_status(server: EmulatorServer) -> int:
    r = requests.get(
        f"{server.base_url}/v1/entities/copy_tasks/demo-copy-workflow",
        headers={"Authorization": f"Bearer {DEFAULT_COZE_TOKEN}"},
        timeout=5,
    )
    return r.status_code


@pytest.mark.parametrize(
    ("step", "error"),
    [
        ({"status": "running", "seconds": 0}, "seconds must be a positive number, got 0"),
        ({"status": "running", "seconds": -5}, "seconds must be a positive number, got -5"),
        ({"status": "running", "seconds": "45"}, "seconds must be a positive number, got '45'"),
        ({"status": "running", "seconds": True}, "seconds must be a positive number, got True"),
        ({"status": "running", "seconds": float("inf")}, "seconds must be a positive number, got inf"),
        (
            {"status": "running", "seconds": 5, "repeat": 2},
            "a step takes either repeat (requests) or seconds (time), not both",
        ),
    ],
)
def test_bad_seconds_are_refused(emulator: EmulatorServer, step: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(f"step 0: {error}") + "$"):
        emulator.set_task("truewatch", "t", [step])
    if step["seconds"] != float("inf"):  # JSON has no infinity
        r = control(emulator, "POST", "tasks", json={"api": "truewatch", "task_id": "t", "steps": [step]})
        assert (r.status_code, r.json()["error"]) == (400, f"step 0: {error}")
