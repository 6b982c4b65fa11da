"""The emulator's start calls over real loopback HTTP: what they create, the import's packages and
conflicts, budgets, the record of what was started, reset.

Coze ``POST /v1/entities/copy_tasks``; TrueWatch ``…/export/task/create`` and ``…/upload`` (a
multipart resource package). Every created task is checked through its status endpoint; start
plans (scripted answers and faults) are in ``test_emulator_start_plans.py``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_taskstatus.emulator import (
    DEFAULT_COZE_TOKEN,
    DEFAULT_TRUEWATCH_KEY,
    EmulatorServer,
    RateLimits,
    resource_zip,
)
from airflow_provider_taskstatus.emulator.coze import COZE_WORKSPACE_ID
from airflow_provider_taskstatus.emulator.packages import Resource, read_package
from tests.emulator_calls import (
    CLASHING,
    COPY_PATH,
    COZE_AUTH,
    EXPORT_PATH,
    NEW_PACKAGE,
    SEED,
    TW_AUTH,
    UPLOAD_PATH,
    control,
    copy_start,
    coze_data,
    export_start,
    tw_content,
    upload,
)

# --- Coze: POST /v1/entities/copy_tasks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "target_workspace"),
    [
        ({"entity_id": "wf-1", "entity_type": "workflow"}, COZE_WORKSPACE_ID),
        ({"entity_id": "app-1", "entity_type": "app", "to_workspace_id": ""}, COZE_WORKSPACE_ID),
        (
            {"entity_id": "bot-1", "entity_type": "bot", "to_workspace_id": "7400000000000000042"},
            "7400000000000000042",
        ),
    ],
    ids=["workflow-in-place", "app-in-place", "bot-elsewhere"],
)
def test_coze_start_creates_a_task_that_reports_the_request(
    emulator: EmulatorServer, body: dict[str, str], target_workspace: str
) -> None:
    r = copy_start(emulator, body)
    answer = r.json()
    assert r.status_code == 200
    assert (answer["code"], answer["msg"]) == (0, "")
    assert answer["detail"]["logid"] == r.headers["x-tt-logid"]
    task_id = answer["data"]["task_id"]
    assert set(answer["data"]) == {"task_id"}
    assert task_id.isdigit() and task_id.startswith("7530") and len(task_id) == 19

    polls = [coze_data(emulator, task_id) for _ in range(4)]
    assert [p["task_status"] for p in polls] == ["in_progress", "in_progress", "successful", "successful"]
    for data in polls:
        assert data["task_id"] == task_id
        assert data["entity_type"] == body["entity_type"]
        assert data["source_entity_id"] == body["entity_id"]
        assert data["target_workspace_id"] == target_workspace
        assert data["target_entity_id"].isdigit()
    assert len({p["target_entity_id"] for p in polls}) == 1, "the copy's id does not change between polls"
    (started,) = emulator.started()
    assert started == {
        "api": "coze",
        "task_id": task_id,
        "kind": "task",
        "entity_id": body["entity_id"],
        "time": started["time"],
        "answered": True,
    }


def test_coze_start_ids_are_fresh(emulator: EmulatorServer) -> None:
    ids = [
        copy_start(emulator, {"entity_id": "w", "entity_type": "workflow"}).json()["data"]["task_id"]
        for _ in range(5)
    ]
    assert len(set(ids)) == 5
    assert emulator.start_count("coze") == 5


@pytest.mark.parametrize("to_workspace", [None, "", COZE_WORKSPACE_ID])
def test_same_workspace_bot_is_copied_at_once_without_a_task(
    emulator: EmulatorServer, to_workspace: str | None
) -> None:
    body = {"entity_id": "bot-1", "entity_type": "bot"}
    if to_workspace is not None:
        body["to_workspace_id"] = to_workspace
    r = copy_start(emulator, body)
    assert r.status_code == 200
    data = r.json()["data"]
    assert set(data) == {"copied_entity_id"}
    assert data["copied_entity_id"].isdigit() and data["copied_entity_id"] != "bot-1"
    (started,) = emulator.started("coze")
    assert (started["task_id"], started["kind"], started["entity_id"], started["answered"]) == (
        None,
        "copy",
        "bot-1",
        True,
    )
    (logged,) = emulator.requests(call="start")
    assert (logged["task_id"], logged["http_status"]) == (None, 200)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer pat_wrong"}, {"Authorization": DEFAULT_COZE_TOKEN}],
    ids=["missing", "wrong", "no-bearer"],
)
def test_coze_start_auth_failure_is_the_status_calls_answer(
    emulator: EmulatorServer, headers: dict[str, str]
) -> None:
    r = copy_start(emulator, {"entity_id": "wf", "entity_type": "workflow"}, headers)
    status = requests.get(f"{emulator.base_url}{COPY_PATH}/demo-copy-workflow", headers=headers, timeout=5)
    assert r.status_code == status.status_code == 401
    body, expected = r.json(), status.json()
    assert (
        (body["code"], body["msg"], body["data"])
        == (expected["code"], expected["msg"], None)
        == (
            4100,
            "authentication is invalid: check the access token and the API region",
            None,
        )
    )
    assert body["detail"]["logid"] == r.headers["x-tt-logid"]
    assert emulator.started() == []
    assert [(e["call"], e["auth_valid"], e["task_id"]) for e in emulator.requests(call="start")] == [
        ("start", False, None)
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "the body must be a JSON object"),
        ('["wf"]', "the body must be a JSON object"),
        ('{"entity_type": "workflow"}', "entity_id is required: a non-empty string"),
        ('{"entity_id": "", "entity_type": "workflow"}', "entity_id is required: a non-empty string"),
        ('{"entity_id": 42, "entity_type": "workflow"}', "entity_id is required: a non-empty string"),
        (
            '{"entity_id": "x", "entity_type": "plugin"}',
            "entity_type must be one of bot, app, workflow, got 'plugin'",
        ),
        ('{"entity_id": "x"}', "entity_type must be one of bot, app, workflow, got None"),
        (
            '{"entity_id": "x", "entity_type": "app", "to_workspace_id": 7}',
            "to_workspace_id must be a string",
        ),
        (
            '{"entity_id": "x", "entity_type": "app", "workspace_id": "7"}',
            "unknown field workspace_id: the fields are entity_id, entity_type, to_workspace_id",
        ),
    ],
)
def test_coze_malformed_start_is_4000_and_creates_nothing(
    emulator: EmulatorServer, raw: str, message: str
) -> None:
    emulator.plan_starts("coze", [{"steps": [{"task_status": "failed"}]}])
    r = requests.post(
        emulator.base_url + COPY_PATH,
        data=raw,
        headers={**COZE_AUTH, "Content-Type": "application/json"},
        timeout=5,
    )
    assert r.status_code == 400
    assert (r.json()["code"], r.json()["msg"], r.json()["data"]) == (4000, message, None)
    assert emulator.started() == []
    task_id = copy_start(emulator, {"entity_id": "wf", "entity_type": "workflow"}).json()["data"]["task_id"]
    assert coze_data(emulator, task_id)["task_status"] == "failed", "a refused start consumes no plan"


# --- TrueWatch: export -------------------------------------------------------------------------


def test_truewatch_export_creates_an_export_task(emulator: EmulatorServer) -> None:
    r = export_start(emulator)
    body = r.json()
    assert r.status_code == 200
    assert (body["code"], body["success"], body["errorCode"], body["message"]) == (200, True, "", "")
    assert body["traceId"] == r.headers["x-trace-id"]
    task_id = body["content"]["taskId"]
    assert set(body["content"]) == {"taskId"}
    polls = [tw_content(emulator, task_id) for _ in range(4)]
    assert [p["status"] for p in polls] == ["start", "running", "ok", "ok"]
    assert {p["action"] for p in polls} == {"export"}
    assert export_start(emulator).json()["content"]["taskId"] != task_id
    assert [(s["kind"], s["action"], s["answered"]) for s in emulator.started("truewatch")] == [
        ("task", "export", True)
    ] * 2


@pytest.mark.parametrize("path", [EXPORT_PATH, UPLOAD_PATH])
@pytest.mark.parametrize("headers", [{}, {"DF-API-KEY": "nope"}], ids=["missing", "wrong"])
def test_truewatch_start_auth_failure_is_the_status_calls_answer(
    emulator: EmulatorServer, path: str, headers: dict[str, str]
) -> None:
    files = {"files": ("x.zip", NEW_PACKAGE, "application/zip")} if path == UPLOAD_PATH else None
    r = requests.post(emulator.base_url + path, files=files, headers=headers, timeout=5)
    assert r.status_code == 403
    assert r.json() == {
        "code": 403,
        "content": None,
        "errorCode": "ft.InvalidAPIKey",
        "message": "invalid DF-API-KEY",
        "success": False,
        "traceId": r.headers["x-trace-id"],
    }
    assert emulator.started() == []
    assert emulator.workspace_resources() == SEED


# --- TrueWatch: import (upload) ----------------------------------------------------------------


def test_import_creates_a_task_counting_what_it_imported(emulator: EmulatorServer) -> None:
    r = upload(emulator)
    body = r.json()
    assert (r.status_code, body["success"], body["traceId"]) == (200, True, r.headers["x-trace-id"])
    task_id = body["content"]["taskId"]
    polls = [tw_content(emulator, task_id) for _ in range(3)]
    assert [(p["status"], p["action"]) for p in polls] == [("running", "import")] * 2 + [("ok", "import")]
    assert polls[-1]["import_info"] == {"successCount": 3, "failCount": 0}
    resources = emulator.workspace_resources()
    assert resources["monitor"] == ["CPU usage high", "Disk full"]
    assert resources["pipeline"] == ["nginx"]
    (started,) = emulator.started()
    assert (started["task_id"], started["action"], started["answered"]) == (task_id, "import", True)


def test_import_conflicts_create_no_task(emulator: EmulatorServer) -> None:
    r = upload(emulator, CLASHING)
    assert r.status_code == 200
    body = r.json()
    assert (body["code"], body["success"], body["errorCode"]) == (200, True, "")
    assert body["content"] == {
        "repeat_name": ["CPU usage high"],
        "repeat_identifier": ["Host overview"],
        "repeat_conflict": [],
    }
    assert emulator.started() == []
    assert emulator.workspace_resources() == SEED
    (logged,) = emulator.requests(call="start")
    assert (logged["task_id"], logged["http_status"]) == (None, 200)


def test_uploading_the_same_package_twice_conflicts_the_second_time(emulator: EmulatorServer) -> None:
    assert "taskId" in upload(emulator).json()["content"]
    again = upload(emulator).json()["content"]
    assert again == {"repeat_name": ["Disk full"], "repeat_identifier": ["Ops"], "repeat_conflict": []}
    assert emulator.start_count("truewatch") == 1


@pytest.mark.parametrize(
    ("options", "imported"),
    [
        ({"repeatNameOp": "skip", "repeatIdentifierOp": "skip"}, 1),
        ({"repeatNameOp": "recover", "repeatIdentifierOp": "recover"}, 3),
        ({"repeatNameOp": "continue", "repeatIdentifierOp": "skip"}, 2),
        ({"repeatNameOp": "skip", "repeatIdentifierOp": "recover", "repeatPipelineNameOp": "skip"}, 2),
    ],
)
def test_import_options_resolve_the_conflicts(
    emulator: EmulatorServer, options: dict[str, str], imported: int
) -> None:
    r = upload(emulator, CLASHING, options)
    task_id = r.json()["content"]["taskId"]
    final = [tw_content(emulator, task_id) for _ in range(3)][-1]
    assert final["import_info"] == {"successCount": imported, "failCount": 0}, "skipped ones are not failures"


def test_one_option_does_not_resolve_the_other_kinds_conflicts(emulator: EmulatorServer) -> None:
    content = upload(emulator, CLASHING, {"repeatNameOp": "recover"}).json()["content"]
    assert content == {"repeat_name": [], "repeat_identifier": ["Host overview"], "repeat_conflict": []}


def test_workspace_resources_can_be_set_and_reset_restores_the_seed(emulator: EmulatorServer) -> None:
    emulator.set_workspace_resources({"monitor": ["Disk full"], "explorer": []})
    assert emulator.workspace_resources() == {"monitor": ["Disk full"], "explorer": []}
    assert "taskId" in upload(emulator, CLASHING).json()["content"], (
        "the seeded monitor and dashboard are gone"
    )
    r = control(emulator, "POST", "resources", json={"resources": {"dashboard": ["Ops"]}})
    assert (r.status_code, r.json()) == (200, {"resources": {"dashboard": ["Ops"]}})
    assert control(emulator, "GET", "resources").json() == {"resources": {"dashboard": ["Ops"]}}
    assert upload(emulator).json()["content"]["repeat_identifier"] == ["Ops"]
    emulator.reset()
    assert control(emulator, "GET", "resources").json() == {"resources": SEED}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"resource": {}},
            "resources: unknown key 'resource' (did you mean 'resources'?); known keys: resources",
        ),
        ({"resources": {"monitor": "CPU"}}, "resources['monitor'] must be a list of names, got 'CPU'"),
        ({"resources": {"monitor": [""]}}, "resources['monitor'] must hold non-empty strings, got ['']"),
        ({"resources": {"a/b": []}}, "a resource kind must be a non-empty string without '/', got 'a/b'"),
        ({"resources": ["monitor"]}, "resources must map kinds to lists of names"),
    ],
)
def test_resources_endpoint_is_strict(emulator: EmulatorServer, body: Any, error: str) -> None:
    r = control(emulator, "POST", "resources", json=body)
    assert (r.status_code, r.json()["error"]) == (400, error)
    assert emulator.workspace_resources() == SEED
    with pytest.raises(ValueError, match="must be a list of names"):
        emulator.set_workspace_resources({"monitor": "CPU"})


def _zip(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("package", "options", "message"),
    [
        (None, None, "the body must be multipart/form-data with a files part (the resource zip)"),
        (b"PK\x03\x04 not really", None, "files: the part is not a zip archive"),
        (b"hello", None, "files: the part is not a zip archive"),
        (_zip({}), None, "files: the package holds no resources (entries <kind>/<name>.json)"),
        (_zip({"readme.txt": "hi"}), None, "files: entry 'readme.txt' is not <kind>/<name>.json"),
        (_zip({"monitor/a/b.json": "{}"}), None, "files: entry 'monitor/a/b.json' is not <kind>/<name>.json"),
        (_zip({"monitor/a.json": "{oops"}), None, "files: entry 'monitor/a.json' is damaged or not JSON"),
        (_zip({"monitor/a.json": "[1]"}), None, "files: entry 'monitor/a.json' is not a JSON object"),
        (
            _zip({"monitor/a.json": '{"name": ""}'}),
            None,
            "files: entry 'monitor/a.json': name must be a non-empty string",
        ),
        (
            NEW_PACKAGE,
            {"repeatNameOp": "overwrite"},
            "repeatNameOp must be one of check, skip, recover, continue; got 'overwrite'",
        ),
        (
            NEW_PACKAGE,
            {"repeatIdentifierOp": "continue"},
            "repeatIdentifierOp must be one of check, skip, recover; got 'continue'",
        ),
        (
            NEW_PACKAGE,
            {"repeatPipelineNameOp": "continue"},
            "repeatPipelineNameOp must be one of check, skip, recover; got 'continue'",
        ),
        (
            NEW_PACKAGE,
            {"repeatOp": "skip"},
            "unknown option repeatOp: the options are repeatNameOp, repeatIdentifierOp and repeat<Kind>NameOp",
        ),
    ],
)
def test_bad_uploads_are_param_errors_and_create_nothing(
    emulator: EmulatorServer, package: bytes | None, options: dict[str, str] | None, message: str
) -> None:
    r = upload(emulator, package, options)
    assert r.status_code == 400
    body = r.json()
    assert (body["code"], body["errorCode"], body["success"], body["content"]) == (
        400,
        "ft.ParamError",
        False,
        None,
    )
    assert body["message"] == message
    assert emulator.started() == []
    assert emulator.workspace_resources() == SEED


def test_upload_that_is_not_multipart_or_has_no_files_part(emulator: EmulatorServer) -> None:
    r = requests.post(emulator.base_url + UPLOAD_PATH, json={"files": "x"}, headers=TW_AUTH, timeout=5)
    assert (r.status_code, r.json()["message"]) == (
        400,
        "the body must be multipart/form-data with a files part (the resource zip)",
    )
    r = requests.post(
        emulator.base_url + UPLOAD_PATH,
        files={"files": (None, "not a file"), "other": ("x.zip", NEW_PACKAGE)},
        headers=TW_AUTH,
        timeout=5,
    )
    assert (r.status_code, r.json()["message"]) == (
        400,
        "files must be a file part (the resource zip), not a text field",
    )
    only_options = {"repeatNameOp": (None, "skip")}  # multipart, but no files part
    r = requests.post(emulator.base_url + UPLOAD_PATH, files=only_options, headers=TW_AUTH, timeout=5)
    assert (r.status_code, r.json()["message"]) == (
        400,
        "files is required: a file part holding the resource zip",
    )
    assert emulator.started() == []


def test_resource_zip_round_trips_and_checks_its_input() -> None:
    package = resource_zip({"monitor": ["CPU / memory", "Disk"], "dashboard": ["Ops"]})
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert archive.namelist() == [
            "monitor/CPU %2F memory.json",
            "monitor/Disk.json",
            "dashboard/Ops.json",
        ]
        assert json.loads(archive.read("dashboard/Ops.json")) == {"name": "Ops", "kind": "dashboard"}
    assert read_package(package) == [
        Resource("monitor", "CPU / memory"),
        Resource("monitor", "Disk"),
        Resource("dashboard", "Ops"),
    ]
    assert read_package(_zip({"explorer/Error%20logs.json": "{}", "explorer/": ""})) == [
        Resource("explorer", "Error logs")
    ]
    with pytest.raises(ValueError, match="must hold non-empty strings"):
        resource_zip({"monitor": [""]})
    with pytest.raises(ValueError, match="must be a list of names"):
        resource_zip({"monitor": "CPU"})


# --- budgets, counts, log, reset ----------------------------------------------------------------


@pytest.fixture
def tight() -> Iterator[EmulatorServer]:
    with EmulatorServer(rate_limits=RateLimits(coze_per_token=2, truewatch_per_key=1)) as server:
        yield server


def test_rate_limits_apply_to_start_calls_and_a_refused_start_creates_nothing(tight: EmulatorServer) -> None:
    tight.plan_starts("coze", [{"steps": [{"task_status": "failed"}]}])
    first = copy_start(tight, {"entity_id": "w", "entity_type": "workflow"}).json()["data"]["task_id"]
    assert coze_data(tight, first)["task_status"] == "failed"  # the status call spends the second request
    refused = copy_start(tight, {"entity_id": "w", "entity_type": "workflow"})
    assert (refused.status_code, refused.json()["code"], refused.json()["data"]) == (429, 4020, None)
    assert tight.start_count("coze") == 1

    assert export_start(tight).status_code == 200
    for limited in (export_start(tight), upload(tight)):
        assert (limited.status_code, limited.json()["errorCode"]) == (401, "ft.TriggerApiAkCurrentLimiting")
    assert tight.start_count("truewatch") == 1
    assert tight.workspace_resources() == SEED
    assert [e["limited"] for e in tight.requests(call="start")] == [None, "key", None, "key", "key"]


def test_a_start_refused_by_the_budget_consumes_no_plan() -> None:
    with EmulatorServer(rate_limits=RateLimits(coze_per_token=0)) as server:
        server.plan_starts("coze", [{"start": {"code": 4013}}])
        assert copy_start(server, {"entity_id": "w", "entity_type": "app"}).json()["code"] == 4020
        server.set_rate_limits(None)
        assert copy_start(server, {"entity_id": "w", "entity_type": "app"}).json()["code"] == 4013


def test_counts_in_started_requests_and_stats(emulator: EmulatorServer) -> None:
    emulator.plan_starts("truewatch", [{"start": {"lost": True}}])
    copy_start(emulator, {"entity_id": "b", "entity_type": "bot"})
    task_id = copy_start(emulator, {"entity_id": "w", "entity_type": "workflow"}).json()["data"]["task_id"]
    coze_data(emulator, task_id)
    with pytest.raises(requests.exceptions.ConnectionError):
        export_start(emulator)
    upload(emulator, CLASHING)  # a conflict: a start request, no side effect

    assert (emulator.start_count(), emulator.start_count("coze"), emulator.start_count("truewatch")) == (
        3,
        2,
        1,
    )
    started = control(emulator, "GET", "started").json()
    assert [(s["api"], s["kind"], s["answered"]) for s in started] == [
        ("coze", "copy", True),
        ("coze", "task", True),
        ("truewatch", "task", False),
    ]
    assert control(emulator, "GET", "started", params={"api": "truewatch"}).json() == started[2:]
    assert control(emulator, "GET", "started", params={"api": "x"}).status_code == 400

    plain = control(emulator, "GET", "requests").json()
    assert isinstance(plain, list) and len(plain) == 5, "without the flag the log stays a list"
    assert [e["call"] for e in plain] == ["start", "start", "status", "start", "start"]
    counted = control(emulator, "GET", "requests", params={"counts": "true", "api": "coze"}).json()
    assert counted["started"] == {"coze": 2, "truewatch": 1}
    assert [e["task_id"] for e in counted["requests"]] == [None, task_id, task_id]
    starts_only = control(emulator, "GET", "requests", params={"call": "start"}).json()
    assert [e["task_id"] for e in starts_only] == [None, task_id, started[2]["task_id"], None]
    assert control(emulator, "GET", "requests", params={"counts": "maybe"}).status_code == 400

    stats = control(emulator, "GET", "stats").json()
    assert (stats["by_call"], stats["started"]) == ({"start": 4, "status": 1}, {"coze": 2, "truewatch": 1})
    assert stats["by_status"] == {"200": 4, "None": 1}
    later = control(emulator, "GET", "stats", params={"since": started[1]["time"]}).json()
    assert later["started"] == {"coze": 1, "truewatch": 1}


def test_reset_clears_plans_and_started_tasks(emulator: EmulatorServer) -> None:
    emulator.plan_starts("coze", [{"start": {"reset": True}}])
    upload(emulator)
    assert requests.post(emulator.base_url + "/_emulator/reset", timeout=5).status_code == 200
    assert emulator.started() == []
    assert emulator.workspace_resources() == SEED
    assert copy_start(emulator, {"entity_id": "w", "entity_type": "workflow"}).status_code == 200, (
        "the plan is gone"
    )
    assert control(emulator, "GET", "requests", params={"counts": "1"}).json()["started"] == {
        "coze": 1,
        "truewatch": 0,
    }


def test_no_secret_in_start_logs(emulator: EmulatorServer) -> None:
    copy_start(emulator, {"entity_id": "w", "entity_type": "workflow"})
    upload(emulator)
    dumped = json.dumps([emulator.requests(), emulator.started()])
    assert DEFAULT_COZE_TOKEN not in dumped and DEFAULT_TRUEWATCH_KEY not in dumped
