"""The emulator over real loopback HTTP: seeded lifecycles, auth, fault steps, control endpoints."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_taskstatus.emulator import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY, EmulatorServer

if TYPE_CHECKING:
    from benchmarks.tls import CertFiles

COZE_AUTH = {"Authorization": f"Bearer {DEFAULT_COZE_TOKEN}"}
TW_AUTH = {"DF-API-KEY": DEFAULT_TRUEWATCH_KEY}
TW_PATH = "/api/v1/workspace/resource/query_action_status"
WEIRD_ID = "a/b?c#d ../e f"
WEIRD_ID_ENCODED = "a%2Fb%3Fc%23d%20..%2Fe%20f"


def coze(server: EmulatorServer, task_id: str, headers: dict[str, str] | None = None) -> requests.Response:
    """``task_id`` is sent as given: callers percent-encode it themselves when needed."""
    url = f"{server.base_url}/v1/entities/copy_tasks/{task_id}"
    return requests.get(url, headers=COZE_AUTH if headers is None else headers, timeout=5)


def truewatch(
    server: EmulatorServer, task_id: str | None, headers: dict[str, str] | None = None
) -> requests.Response:
    params = {} if task_id is None else {"taskId": task_id}
    headers = TW_AUTH if headers is None else headers
    return requests.get(server.base_url + TW_PATH, params=params, headers=headers, timeout=5)


def coze_statuses(server: EmulatorServer, task_id: str, n: int) -> list[str]:
    return [coze(server, task_id).json()["data"]["task_status"] for _ in range(n)]


def tw_statuses(server: EmulatorServer, task_id: str, n: int) -> list[str]:
    return [truewatch(server, task_id).json()["content"]["status"] for _ in range(n)]


# --- seeded Coze tasks ------------------------------------------------------------------------


def test_health(emulator: EmulatorServer) -> None:
    r = requests.get(emulator.base_url + "/_emulator/health", timeout=5)
    assert (r.status_code, r.json()) == (200, {"ok": True})


def test_coze_success_lifecycle_and_envelope(emulator: EmulatorServer) -> None:
    first = coze(emulator, "demo-copy-success")
    body = first.json()
    assert first.status_code == 200
    assert (body["code"], body["msg"]) == (0, "")
    assert body["detail"]["logid"] == first.headers["x-tt-logid"]
    assert len(body["detail"]["logid"]) == 32
    data = body["data"]
    assert data["task_id"] == "demo-copy-success"
    assert data["entity_type"] == "bot"
    for key in ("source_entity_id", "target_entity_id", "target_workspace_id"):
        assert data[key].isdigit()
    # 3 x in_progress (including the first call above), then successful forever.
    assert coze_statuses(emulator, "demo-copy-success", 5) == ["in_progress"] * 2 + ["successful"] * 3
    assert coze(emulator, "demo-copy-success").json()["detail"]["logid"] != body["detail"]["logid"]


def test_coze_failed_lifecycle(emulator: EmulatorServer) -> None:
    assert coze_statuses(emulator, "demo-copy-failed", 1) == ["in_progress"]
    data = coze(emulator, "demo-copy-failed").json()["data"]
    assert data["task_status"] == "failed"
    reasons = data["failed_reasons"]
    assert [r["entity_type"] for r in reasons] == ["plugin", "knowledge"]
    assert reasons[0]["entity_name"] == "单词学习助手"
    assert reasons[0]["failed_reason"] == "资源配额不足，无法完成复制"
    assert all(set(r) == {"entity_id", "entity_name", "entity_type", "failed_reason"} for r in reasons)


def test_coze_workflow_succeeds_at_once(emulator: EmulatorServer) -> None:
    data = coze(emulator, "demo-copy-workflow").json()["data"]
    assert (data["task_status"], data["entity_type"]) == ("successful", "workflow")


# --- seeded TrueWatch tasks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_id", "statuses", "action", "final"),
    [
        ("demo-export-ok", ["start", "running", "running", "ok", "ok"], "export", {}),
        ("demo-import-ok", ["running", "running", "ok"], "import", {"successCount": 12, "failCount": 0}),
        ("demo-import-partial", ["running", "ok"], "import", {"successCount": 10, "failCount": 2}),
        ("demo-error", ["running", "error"], "import", {}),
        ("demo-cancel", ["running", "cancel", "cancel"], "import", {}),
    ],
)
def test_truewatch_lifecycles(
    emulator: EmulatorServer, task_id: str, statuses: list[str], action: str, final: dict[str, Any]
) -> None:
    assert tw_statuses(emulator, task_id, len(statuses) - 1) == statuses[:-1]
    r = truewatch(emulator, task_id)
    body = r.json()
    assert r.status_code == 200
    assert (body["code"], body["success"], body["errorCode"]) == (200, True, "")
    assert body["traceId"] == r.headers["x-trace-id"]
    content = body["content"]
    assert (content["status"], content["action"], content["import_info"]) == (statuses[-1], action, final)


def test_truewatch_error_and_partial_export_details(emulator: EmulatorServer) -> None:
    assert tw_statuses(emulator, "demo-error", 1) == ["running"]
    content = truewatch(emulator, "demo-error").json()["content"]
    assert content["errorCode"] == "ft.ResourceImportError"
    assert content["message"]
    assert tw_statuses(emulator, "demo-export-partial", 1) == ["running"]
    content = truewatch(emulator, "demo-export-partial").json()["content"]
    assert (content["status"], content["action"]) == ("ok", "export")
    failed = content["import_info"]["exportFailedInfo"]
    assert [(f["name"], f["type"]) for f in failed] == [("CPU dashboard", "dashboard")]


# --- auth and unknown ids ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer pat_wrong"}, {"Authorization": DEFAULT_COZE_TOKEN}],
    ids=["missing", "wrong", "no-bearer"],
)
def test_coze_auth_failure(emulator: EmulatorServer, headers: dict[str, str]) -> None:
    r = coze(emulator, "demo-copy-workflow", headers)
    body = r.json()
    assert r.status_code == 401
    assert body["code"] == 4100
    assert body["msg"] == "authentication is invalid: check the access token and the API region"
    assert body["data"] is None
    assert body["detail"]["logid"] == r.headers["x-tt-logid"]
    # A rejected request does not consume a step.
    assert coze_statuses(emulator, "demo-copy-success", 1) == ["in_progress"]
    assert [e["auth_valid"] for e in emulator.requests(api="coze")] == [False, True]


@pytest.mark.parametrize("headers", [{}, {"DF-API-KEY": "nope"}], ids=["missing", "wrong"])
def test_truewatch_auth_failure(emulator: EmulatorServer, headers: dict[str, str]) -> None:
    r = truewatch(emulator, "demo-export-ok", headers)
    body = r.json()
    assert r.status_code == 403
    assert body == {
        "code": 403,
        "content": None,
        "errorCode": "ft.InvalidAPIKey",
        "message": "invalid DF-API-KEY",
        "success": False,
        "traceId": r.headers["x-trace-id"],
    }
    assert tw_statuses(emulator, "demo-export-ok", 1) == ["start"]


def test_unknown_ids(emulator: EmulatorServer) -> None:
    r = coze(emulator, "no-such-task")
    assert r.status_code == 404
    assert (r.json()["code"], r.json()["msg"], r.json()["data"]) == (
        4200,
        "copy task no-such-task not found",
        None,
    )
    r = truewatch(emulator, "no-such-task")
    assert r.status_code == 404
    assert (r.json()["errorCode"], r.json()["message"]) == ("ft.TaskNotFound", "task no-such-task not found")
    assert r.json()["success"] is False


@pytest.mark.parametrize("task_id", [None, ""])
def test_truewatch_missing_task_id(emulator: EmulatorServer, task_id: str | None) -> None:
    r = truewatch(emulator, task_id)
    assert (r.status_code, r.json()["errorCode"], r.json()["code"]) == (400, "ft.ParamError", 400)


# --- ids that need encoding -------------------------------------------------------------------


def test_coze_percent_encoded_id(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", WEIRD_ID, [{"task_status": "successful"}])
    r = coze(emulator, WEIRD_ID_ENCODED)
    assert r.status_code == 200
    assert r.json()["data"]["task_id"] == WEIRD_ID
    (entry,) = emulator.requests(task_id=WEIRD_ID)
    assert entry["raw_path"] == "/v1/entities/copy_tasks/" + WEIRD_ID_ENCODED


def test_coze_unencoded_slash_does_not_match(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "a/b", [{"task_status": "successful"}])
    assert coze(emulator, "a/b").status_code == 404
    assert coze(emulator, "a%2Fb").status_code == 200


def test_truewatch_encoded_query(emulator: EmulatorServer) -> None:
    emulator.set_task("truewatch", WEIRD_ID, [{"status": "ok"}])
    r = truewatch(emulator, WEIRD_ID)  # requests encodes the query value
    assert r.json()["content"]["status"] == "ok"
    (entry,) = emulator.requests(api="truewatch")
    assert entry["task_id"] == WEIRD_ID
    assert "%2F" in entry["query_string"]
    assert "#" not in entry["query_string"]


# --- fault steps ------------------------------------------------------------------------------


def test_raw_http_status_with_headers(emulator: EmulatorServer) -> None:
    html = "<html><body>503 Service Temporarily Unavailable</body></html>"
    emulator.set_task(
        "coze",
        "t",
        [
            {"http_status": 503, "body": html, "headers": {"Retry-After": "2"}, "repeat": 2},
            {"task_status": "successful"},
        ],
    )
    for _ in range(2):
        r = coze(emulator, "t")
        assert (r.status_code, r.text, r.headers["Retry-After"]) == (503, html, "2")
        assert r.headers["Content-Type"].startswith("text/html")
    assert coze_statuses(emulator, "t", 1) == ["successful"]


def test_raw_json_body(emulator: EmulatorServer) -> None:
    emulator.set_task("truewatch", "t", [{"http_status": 502, "body": {"error": "bad gateway"}}])
    r = truewatch(emulator, "t")
    assert (r.status_code, r.json()) == (502, {"error": "bad gateway"})
    assert r.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("step", "status"),
    [
        ({"code": 4000, "msg": "bad"}, 400),
        ({"code": 4100, "msg": "auth"}, 401),
        ({"code": 4101, "msg": "perm"}, 403),
        ({"code": 4200, "msg": "gone"}, 404),
        ({"code": 4013, "msg": "rate limited"}, 429),
        ({"code": 5000, "msg": "internal"}, 200),
        ({"code": 4013, "msg": "rate limited", "http_status": 200}, 200),
    ],
)
def test_coze_envelope_errors(emulator: EmulatorServer, step: dict[str, Any], status: int) -> None:
    emulator.set_task("coze", "t", [step])
    r = coze(emulator, "t")
    body = r.json()
    assert r.status_code == status
    assert (body["code"], body["msg"], body["data"]) == (step["code"], step["msg"], None)
    assert body["detail"]["logid"] == r.headers["x-tt-logid"]


@pytest.mark.parametrize(
    ("step", "status"),
    [
        ({"errorCode": "ft.TriggerApiAkCurrentLimiting", "message": "slow down"}, 401),
        ({"errorCode": "ft.TriggerApiWorkspaceCurrentLimiting", "message": "slow down"}, 401),
        ({"errorCode": "ft.InvalidAPIKey", "message": "revoked"}, 403),
        ({"errorCode": "ft.Something", "message": "odd"}, 400),
        ({"errorCode": "ft.Something", "message": "odd", "http_status": 500}, 500),
    ],
)
def test_truewatch_envelope_errors(emulator: EmulatorServer, step: dict[str, Any], status: int) -> None:
    emulator.set_task("truewatch", "t", [step])
    r = truewatch(emulator, "t")
    body = r.json()
    assert r.status_code == status
    assert body["code"] == status
    assert (body["errorCode"], body["message"], body["success"], body["content"]) == (
        step["errorCode"],
        step["message"],
        False,
        None,
    )
    assert body["traceId"] == r.headers["x-trace-id"]


def test_delay(emulator: EmulatorServer) -> None:
    emulator.set_task("truewatch", "t", [{"status": "running", "delay": 0.4}])
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(emulator.base_url + TW_PATH, params={"taskId": "t"}, headers=TW_AUTH, timeout=0.1)
    start = time.monotonic()
    assert tw_statuses(emulator, "t", 1) == ["running"]
    assert time.monotonic() - start >= 0.4


def test_reset_drops_connection(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "t", [{"reset": True}, {"task_status": "successful"}])
    with pytest.raises(requests.exceptions.ConnectionError):
        coze(emulator, "t")
    assert coze_statuses(emulator, "t", 1) == ["successful"]
    assert [e["http_status"] for e in emulator.requests(task_id="t")] == [None, 200]


def test_truncate(emulator: EmulatorServer) -> None:
    emulator.set_task("truewatch", "t", [{"status": "ok", "truncate": True}])
    r = truewatch(emulator, "t")
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(r.content)
    assert r.text.startswith('{"code": 200')
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)


def test_extra_fields_and_entity_type(emulator: EmulatorServer) -> None:
    emulator.set_task(
        "coze", "t", [{"task_status": "in_progress", "target_workspace_id": "42"}], entity_type="app"
    )
    data = coze(emulator, "t").json()["data"]
    assert (data["entity_type"], data["target_workspace_id"]) == ("app", "42")


# --- control endpoints ------------------------------------------------------------------------


def test_control_set_task_over_http(emulator: EmulatorServer) -> None:
    spec = {
        "api": "truewatch",
        "task_id": "t",
        "action": "export",
        "steps": [{"status": "running"}, {"status": "ok"}],
    }
    r = requests.post(emulator.base_url + "/_emulator/tasks", json=spec, timeout=5)
    assert r.status_code == 201
    assert tw_statuses(emulator, "t", 3) == ["running", "ok", "ok"]
    assert truewatch(emulator, "t").json()["content"]["action"] == "export"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"api": "slack", "task_id": "t", "steps": [{"status": "ok"}]}, "api must be one of"),
        ({"api": "coze", "task_id": "", "steps": [{"task_status": "ok"}]}, "task_id"),
        ({"api": "coze", "task_id": "t", "steps": []}, "steps must be a non-empty list"),
        ({"api": "coze", "task_id": "t", "steps": ["x"]}, "step 0: must be an object"),
        ({"api": "coze", "task_id": "t", "steps": [{"task_status": "x", "repeat": 0}]}, "repeat"),
        ({"api": "coze", "task_id": "t", "steps": [{"status": "ok"}]}, "step 0 (coze): unknown key 'status'"),
        ({"api": "coze", "task_id": "t", "steps": [{"delay": 1}]}, "step 0: needs one of"),
        ({"api": "coze", "task_id": "t", "steps": [{"code": "4013"}]}, "code must be an integer"),
        ({"api": "truewatch", "task_id": "t", "steps": [{"errorCode": 1}]}, "errorCode must be a string"),
        ({"api": "truewatch", "task_id": "t", "steps": [{"status": "ok"}], "action": 1}, "action must be"),
        ([1, 2], "JSON object"),
    ],
)
def test_control_set_task_validation(emulator: EmulatorServer, spec: Any, message: str) -> None:
    r = requests.post(emulator.base_url + "/_emulator/tasks", json=spec, timeout=5)
    assert r.status_code == 400
    assert message in r.json()["error"]


def test_control_rejects_invalid_json(emulator: EmulatorServer) -> None:
    r = requests.post(emulator.base_url + "/_emulator/tasks", data="{not json", timeout=5)
    assert r.status_code == 400
    assert r.json()["error"]


def test_set_task_validates_in_python(emulator: EmulatorServer) -> None:
    with pytest.raises(ValueError, match="delay"):
        emulator.set_task("coze", "t", [{"task_status": "successful", "delay": -1}])
    with pytest.raises(ValueError, match="JSON-serializable"):
        emulator.set_task("coze", "t", [{"task_status": "failed", "failed_reasons": object()}])
    assert coze(emulator, "t").status_code == 404  # nothing was stored


def test_control_requests_filters_and_reset(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "demo-copy-workflow", [{"task_status": "failed"}])
    coze(emulator, "demo-copy-workflow")
    truewatch(emulator, "demo-cancel")
    truewatch(emulator, "demo-error")
    log = requests.get(
        emulator.base_url + "/_emulator/requests", params={"api": "truewatch"}, timeout=5
    ).json()
    assert [e["task_id"] for e in log] == ["demo-cancel", "demo-error"]
    log = requests.get(
        emulator.base_url + "/_emulator/requests", params={"task_id": "demo-error"}, timeout=5
    ).json()
    assert len(log) == 1
    assert set(log[0]) == {
        "api",
        "call",
        "task_id",
        "raw_path",
        "query_string",
        "http_status",
        "auth_valid",
        "limited",
        "time",
        "peer",
        "conn",
    }

    assert requests.post(emulator.base_url + "/_emulator/reset", timeout=5).status_code == 200
    assert requests.get(emulator.base_url + "/_emulator/requests", timeout=5).json() == []
    assert coze_statuses(emulator, "demo-copy-workflow", 1) == ["successful"]  # the seeded script is back


def test_no_secret_in_request_log_or_access_log(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret_token, secret_key = "pat_SECRET_should_not_leak", "tw_SECRET_should_not_leak"
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        coze(emulator, "demo-copy-workflow", {"Authorization": f"Bearer {secret_token}"})
        coze(emulator, "demo-copy-workflow")
        truewatch(emulator, "demo-cancel", {"DF-API-KEY": secret_key})
        truewatch(emulator, "demo-cancel")
        deadline = time.monotonic() + 2  # access log records are emitted on the server thread
        while len(caplog.records) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(caplog.records) >= 4
    dumped = requests.get(emulator.base_url + "/_emulator/requests", timeout=5).text + caplog.text
    for secret in (secret_token, secret_key, DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY):
        assert secret not in dumped
    assert [e["auth_valid"] for e in emulator.requests()] == [False, True, False, True]


# --- server lifecycle -------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_non_loopback_bind_refused(host: str) -> None:
    with pytest.raises(ValueError, match=r"non-loopback .*pass allow_remote=True to do it anyway$"):
        EmulatorServer(host=host)


def test_custom_credentials_and_stop() -> None:
    with EmulatorServer(coze_tokens=["pat_a", "pat_b"], truewatch_keys=["k1"]) as server:
        assert server.port != 0
        assert coze(server, "demo-copy-workflow", {"Authorization": "Bearer pat_b"}).status_code == 200
        assert coze(server, "demo-copy-workflow").status_code == 401  # the default token is not accepted
        assert truewatch(server, "demo-cancel", {"DF-API-KEY": "k1"}).status_code == 200
        url = server.base_url
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url + "/_emulator/health", timeout=2)


def test_cli_serves_until_sigterm() -> None:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    cmd = [
        sys.executable,
        "-m",
        "airflow_provider_taskstatus.emulator",
        "--port",
        "0",
        "--coze-token",
        "pat_cli",
    ]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "demo-copy-success" in line
            assert "demo-export-ok" in line
            base_url = line.split()[2]
            assert base_url.startswith("http://127.0.0.1:")
            headers = {"Authorization": "Bearer pat_cli"}
            r = requests.get(
                base_url + "/v1/entities/copy_tasks/demo-copy-workflow", headers=headers, timeout=5
            )
            assert r.json()["data"]["task_status"] == "successful"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_global_faults_preempt_every_task_then_scripts_resume(emulator: EmulatorServer) -> None:
    emulator.inject_faults("coze", [{"http_status": 503, "repeat": 2}, {"code": 4013}])
    answers = [coze(emulator, "demo-copy-success").status_code for _ in range(2)]
    answers.append(coze(emulator, "demo-copy-workflow").status_code)
    assert answers == [503, 503, 429]
    assert coze_statuses(emulator, "demo-copy-success", 4) == ["in_progress"] * 3 + ["successful"]
    assert truewatch(emulator, "demo-export-ok").status_code == 200, "faults of one API leave the other alone"


def test_global_faults_over_http_and_reset_clears_them(emulator: EmulatorServer) -> None:
    url = emulator.base_url + "/_emulator/faults"
    assert requests.post(url, json={"api": "truewatch", "steps": []}, timeout=5).status_code == 400
    created = requests.post(
        url, json={"api": "truewatch", "steps": [{"reset": True, "repeat": 3}]}, timeout=5
    )
    assert created.status_code == 201
    assert created.json() == {"api": "truewatch", "requests": 3}
    emulator.reset()
    assert truewatch(emulator, "demo-export-ok").status_code == 200


# --- benchmark support: TLS, the anchors' stand-ins, bulk tasks, stats ------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    from benchmarks.tls import make_self_signed  # the benchmark's certificate maker

    return make_self_signed(tmp_path_factory.mktemp("tls"))


def test_tls_server_verifies_with_its_own_ca(tls_files: CertFiles) -> None:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.cert, tls_files.key)
    with EmulatorServer(ssl_context=context, access_log=False) as server:
        assert server.base_url.startswith("https://127.0.0.1:")
        r = requests.get(server.base_url + "/_emulator/health", verify=str(tls_files.cert), timeout=5)
        assert r.json() == {"ok": True}
        with pytest.raises(requests.exceptions.SSLError):  # not trusted without the CA
            requests.get(server.base_url + "/_emulator/health", timeout=5)
        assert (
            requests.get(
                server.base_url + "/v1/entities/copy_tasks/demo-copy-workflow",
                headers=COZE_AUTH,
                verify=str(tls_files.cert),
                timeout=5,
            ).json()["data"]["task_status"]
            == "successful"
        )


def test_cli_serves_tls(tls_files: CertFiles) -> None:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "airflow_provider_taskstatus.emulator", "--port", "0", "--quiet"]
    cmd += ["--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().split()[2]
            assert base_url.startswith("https://127.0.0.1:")
            r = requests.get(base_url + "/_emulator/health", verify=str(tls_files.cert), timeout=5)
            assert r.json() == {"ok": True}
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_cli_tls_flags_go_together(tls_files: CertFiles) -> None:
    cmd = [sys.executable, "-m", "airflow_provider_taskstatus.emulator", "--tls-cert", str(tls_files.cert)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr == "taskstatus-emulator: error: --tls-cert and --tls-key go together\n"


def test_dbt_cloud_run_status_flips(emulator: EmulatorServer) -> None:
    url = emulator.base_url + "/api/v2/accounts/42/runs/1001/"
    r = requests.get(url, headers={"Authorization": "Token anything"}, timeout=5)
    assert (r.status_code, r.json()["data"]) == (200, {"id": 1001, "status": 3})
    assert requests.get(url, headers={"Authorization": "Bearer x"}, timeout=5).json()["data"]["status"] == 3
    assert requests.get(url, timeout=5).status_code == 401
    flipped = requests.post(
        emulator.base_url + "/_emulator/flip", json={"api": "dbt_cloud", "ids": [1001]}, timeout=5
    )
    assert flipped.json() == {"api": "dbt_cloud", "flipped": 1}
    assert requests.get(url, headers={"Authorization": "Token t"}, timeout=5).json()["data"]["status"] == 10
    other = emulator.base_url + "/api/v2/accounts/42/runs/1002/"
    assert requests.get(other, headers={"Authorization": "Token t"}, timeout=5).json()["data"]["status"] == 3
    log = emulator.requests(api="dbt_cloud")
    assert [(e["task_id"], e["http_status"], e["auth_valid"]) for e in log] == [
        ("1001", 200, True),
        ("1001", 200, True),
        ("1001", 401, False),
        ("1001", 200, True),
        ("1002", 200, True),
    ]


def test_http_item_is_404_until_flipped_and_reset_clears_flips(emulator: EmulatorServer) -> None:
    url = emulator.base_url + "/bench/http/a1"
    assert requests.get(url, timeout=5).status_code == 404
    requests.post(emulator.base_url + "/_emulator/flip", json={"api": "http", "ids": ["a1"]}, timeout=5)
    assert requests.get(url, timeout=5).status_code == 200
    emulator.reset()
    assert requests.get(url, timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"api": "coze", "ids": ["x"]}, "api must be one of"),
        ({"api": "http", "ids": "x"}, "ids must be a list"),
        (["x"], "JSON object"),
    ],
)
def test_flip_validation(emulator: EmulatorServer, body: Any, message: str) -> None:
    r = requests.post(emulator.base_url + "/_emulator/flip", json=body, timeout=5)
    assert r.status_code == 400
    assert message in r.json()["error"]


def test_bulk_tasks_all_or_nothing(emulator: EmulatorServer) -> None:
    url = emulator.base_url + "/_emulator/tasks"
    specs = [
        {"api": "coze", "task_id": f"bulk-{i}", "steps": [{"task_status": "in_progress"}]} for i in range(3)
    ]
    r = requests.post(url, json=specs, timeout=5)
    assert (r.status_code, r.json()) == (201, {"created": 3})
    assert coze_statuses(emulator, "bulk-2", 1) == ["in_progress"]
    bad = [{"api": "coze", "task_id": "bulk-9", "steps": [{"task_status": "successful"}]}, {"api": "coze"}]
    assert requests.post(url, json=bad, timeout=5).status_code == 400
    assert coze(emulator, "bulk-9").status_code == 404, "nothing of a rejected batch is stored"


def test_stats_counts_requests_and_connections(emulator: EmulatorServer) -> None:
    with requests.Session() as session:  # one kept-alive connection
        for _ in range(3):
            session.get(emulator.base_url + "/v1/entities/copy_tasks/demo-copy-workflow", headers=COZE_AUTH)
    middle = time.time()
    time.sleep(0.01)
    truewatch(emulator, "demo-cancel")  # a new connection each
    requests.get(emulator.base_url + "/bench/http/z", timeout=5)
    stats = requests.get(emulator.base_url + "/_emulator/stats", timeout=5).json()
    assert stats == {
        "requests": 5,
        "connections": 3,
        "new_connections": 3,
        "peers": 3,
        "by_api": {"coze": 3, "truewatch": 1, "http": 1},
        "by_status": {"200": 4, "404": 1},
        "by_call": {"status": 5},
        "rejected": 0,
        "rejected_by_api": {},
        "rejected_by_limit": {},
        "started": {"coze": 0, "truewatch": 0},
    }
    later = requests.get(emulator.base_url + "/_emulator/stats", params={"since": middle}, timeout=5).json()
    assert (later["requests"], later["connections"], later["new_connections"]) == (2, 2, 2)
    before = requests.get(emulator.base_url + "/_emulator/stats", params={"until": middle}, timeout=5).json()
    assert (before["requests"], before["connections"]) == (3, 1)
    assert len({e["conn"] for e in emulator.requests()}) == 3
    assert requests.get(emulator.base_url + "/_emulator/stats?since=x", timeout=5).status_code == 400


def test_stats_tells_a_reused_port_from_the_same_connection(emulator: EmulatorServer) -> None:
    """A connection opened before the window and reused in it is not new; a new one is."""
    with requests.Session() as session:
        url = emulator.base_url + "/v1/entities/copy_tasks/demo-copy-workflow"
        session.get(url, headers=COZE_AUTH)
        middle = time.time()
        time.sleep(0.01)
        session.get(url, headers=COZE_AUTH)
    stats = requests.get(emulator.base_url + "/_emulator/stats", params={"since": middle}, timeout=5).json()
    assert (stats["requests"], stats["connections"], stats["new_connections"]) == (1, 1, 0)


def test_airflow_connections_point_the_default_ids_at_the_emulator(emulator: EmulatorServer) -> None:
    from airflow_provider_taskstatus.emulator import airflow_connections

    env = airflow_connections(emulator.base_url)
    assert set(env) == {"AIRFLOW_CONN_COZE_DEFAULT", "AIRFLOW_CONN_TRUEWATCH_DEFAULT"}
    coze_conn = json.loads(env["AIRFLOW_CONN_COZE_DEFAULT"])
    assert coze_conn == {"conn_type": "coze", "host": emulator.base_url, "password": DEFAULT_COZE_TOKEN}
    assert json.loads(env["AIRFLOW_CONN_TRUEWATCH_DEFAULT"])["password"] == DEFAULT_TRUEWATCH_KEY
