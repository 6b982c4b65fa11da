"""The control endpoints and ``set_task`` / ``inject_faults`` refuse what they do not know.

Over real loopback HTTP against the session emulator; a refused script must leave nothing behind.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_provider_taskstatus.emulator import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY, EmulatorServer

COZE_STEP_KEYS = [
    "body",
    "code",
    "delay",
    "entity_type",
    "failed_reasons",
    "headers",
    "http_status",
    "msg",
    "repeat",
    "reset",
    "seconds",
    "source_entity_id",
    "target_entity_id",
    "target_workspace_id",
    "task_id",
    "task_status",
    "truncate",
]
TRUEWATCH_STEP_KEYS = [
    "action",
    "body",
    "delay",
    "errorCode",
    "headers",
    "http_status",
    "import_info",
    "message",
    "repeat",
    "reset",
    "seconds",
    "status",
    "truncate",
]


def post(server: EmulatorServer, path: str, body: Any) -> requests.Response:
    return requests.post(server.base_url + "/_emulator/" + path, json=body, timeout=5)


def coze_status(server: EmulatorServer, task_id: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {DEFAULT_COZE_TOKEN}"}
    return requests.get(f"{server.base_url}/v1/entities/copy_tasks/{task_id}", headers=headers, timeout=5)


def truewatch_status(server: EmulatorServer, task_id: str) -> requests.Response:
    return requests.get(
        server.base_url + "/api/v1/workspace/resource/query_action_status",
        params={"taskId": task_id},
        headers={"DF-API-KEY": DEFAULT_TRUEWATCH_KEY},
        timeout=5,
    )


def test_misspelled_repeat_is_refused_with_the_known_keys(emulator: EmulatorServer) -> None:
    spec = {"api": "coze", "task_id": "t", "steps": [{"task_status": "in_progress", "repeats": 3}]}
    r = post(emulator, "tasks", spec)
    assert r.status_code == 400
    assert r.json() == {
        "error": "step 0 (coze): unknown key 'repeats' (did you mean 'repeat'?); known keys: "
        + ", ".join(COZE_STEP_KEYS),
        "known_keys": COZE_STEP_KEYS,
    }
    assert coze_status(emulator, "t").status_code == 404, "a refused task is not stored"


def test_python_set_task_raises_the_same_message(emulator: EmulatorServer) -> None:
    spec = {"api": "coze", "task_id": "t", "steps": [{"task_status": "in_progress", "repeats": 3}]}
    http_error = post(emulator, "tasks", spec).json()["error"]
    with pytest.raises(ValueError) as caught:  # noqa: PT011  # the exact message is asserted below
        emulator.set_task("coze", "t", [{"task_status": "in_progress", "repeats": 3}])
    assert str(caught.value) == http_error
    assert coze_status(emulator, "t").status_code == 404


@pytest.mark.parametrize(
    ("api", "step", "unknown"),
    [
        ("coze", {"task_status": "in_progress", "delays": 1}, "'delays' (did you mean 'delay'?)"),
        ("coze", {"http_code": 503}, "'http_code' (did you mean 'code' or 'http_status'?)"),
        ("coze", {"task_status": "in_progress", "progress": 50}, "'progress';"),
        ("truewatch", {"status": "ok", "importInfo": {}}, "'importInfo' (did you mean 'import_info'?)"),
        # Each API's fields are its own: a Coze field in a TrueWatch step is a mistake.
        ("truewatch", {"status": "ok", "failed_reasons": []}, "'failed_reasons';"),
        ("coze", {"code": 4013, "message": "slow"}, "'message'"),
    ],
)
def test_unknown_step_keys_are_refused(
    emulator: EmulatorServer, api: str, step: dict[str, Any], unknown: str
) -> None:
    first = {"task_status": "x"} if api == "coze" else {"status": "x"}
    r = post(emulator, "tasks", {"api": api, "task_id": "t", "steps": [first, step]})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error.startswith(f"step 1 ({api}): unknown key {unknown}")
    assert r.json()["known_keys"] == (COZE_STEP_KEYS if api == "coze" else TRUEWATCH_STEP_KEYS)


def test_documented_fields_are_merged_into_the_answer(emulator: EmulatorServer) -> None:
    reasons = [{"entity_id": "1", "entity_name": "n", "entity_type": "plugin", "failed_reason": "quota"}]
    emulator.set_task(
        "coze", "c", [{"task_status": "failed", "failed_reasons": reasons, "target_workspace_id": "9"}]
    )
    data = coze_status(emulator, "c").json()["data"]
    assert (data["failed_reasons"], data["target_workspace_id"]) == (reasons, "9")
    step = {
        "status": "error",
        "errorCode": "ft.ImportFailed",
        "message": "bad zip",
        "import_info": {"failCount": 1},
    }
    emulator.set_task("truewatch", "w", [step], action="export")
    content = truewatch_status(emulator, "w").json()["content"]
    assert content == {
        "status": "error",
        "action": "export",
        "message": "bad zip",
        "errorCode": "ft.ImportFailed",
        "import_info": {"failCount": 1},
    }


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"task_status": "x", "repeat": "3"}, "step 0: repeat must be a positive integer, got '3'"),
        ({"task_status": "x", "repeat": True}, "step 0: repeat must be a positive integer, got True"),
        (
            {"task_status": "x", "delay": "1"},
            "step 0: delay must be a non-negative number of seconds, got '1'",
        ),
        ({"task_status": "x", "reset": "yes"}, "step 0: reset must be true or false, got 'yes'"),
        ({"task_status": "x", "truncate": 1}, "step 0: truncate must be true or false, got 1"),
        ({"http_status": 503, "body": 5}, "step 0: body must be a string, an object or a list"),
        ({"http_status": True}, "step 0: http_status must be an integer between 100 and 599, got True"),
        (
            {"reset": False},
            "step 0: needs one of ['task_status', 'code', 'http_status', 'body', 'reset'] for api 'coze'"
            ' ("reset": false answers nothing)',
        ),
    ],
)
def test_control_key_types_are_checked(emulator: EmulatorServer, step: dict[str, Any], message: str) -> None:
    r = post(emulator, "tasks", {"api": "coze", "task_id": "t", "steps": [step]})
    assert (r.status_code, r.json()) == (400, {"error": message})
    with pytest.raises(
        ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        emulator.set_task("coze", "t", [step])


def test_reset_false_and_truncate_false_mean_no_fault(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "t", [{"task_status": "successful", "reset": False, "truncate": False}])
    r = coze_status(emulator, "t")
    assert (r.status_code, r.json()["data"]["task_status"]) == (200, "successful")


@pytest.mark.parametrize(
    ("path", "body", "error", "known"),
    [
        (
            "tasks",
            {"api": "coze", "task_id": "t", "step": [{"task_status": "x"}]},
            "task: unknown key 'step' (did you mean 'steps'?); known keys: action, api, entity_type, steps, task_id",
            ["action", "api", "entity_type", "steps", "task_id"],
        ),
        (
            "faults",
            {"api": "coze", "steps": [{"http_status": 503}], "task_id": "t"},
            "faults: unknown key 'task_id'; known keys: api, steps",
            ["api", "steps"],
        ),
        (
            "flip",
            {"api": "http", "id": ["a"]},
            "flip: unknown key 'id' (did you mean 'ids'?); known keys: api, ids",
            ["api", "ids"],
        ),
        ("reset", {"reset": False}, "reset: unknown key 'reset'; known keys: none", []),
    ],
)
def test_unknown_body_keys_are_refused(
    emulator: EmulatorServer, path: str, body: dict[str, Any], error: str, known: list[str]
) -> None:
    emulator.set_task("coze", "kept", [{"task_status": "in_progress"}])
    r = post(emulator, path, body)
    assert (r.status_code, r.json()) == (400, {"error": error, "known_keys": known})
    assert coze_status(emulator, "kept").status_code == 200, "a refused request changes nothing (no reset)"
    assert coze_status(emulator, "demo-copy-success").json()["data"]["task_status"] == "in_progress"


def test_bulk_tasks_name_the_refused_one(emulator: EmulatorServer) -> None:
    specs = [
        {"api": "coze", "task_id": "a", "steps": [{"task_status": "successful"}]},
        {"api": "coze", "task_id": "b", "steps": [{"task_status": "successful", "repaet": 2}]},
    ]
    r = post(emulator, "tasks", specs)
    assert r.status_code == 400
    assert r.json()["error"].startswith(
        "task 1: step 0 (coze): unknown key 'repaet' (did you mean 'repeat' or 'reset'?)"
    )
    assert coze_status(emulator, "a").status_code == 404


def test_python_inject_faults_is_strict(emulator: EmulatorServer) -> None:
    with pytest.raises(
        ValueError, match=r"^step 0 \(truewatch\): unknown key 'repeats' \(did you mean 'repeat'\?\)"
    ):
        emulator.inject_faults("truewatch", [{"http_status": 503, "repeats": 2}])
    assert truewatch_status(emulator, "demo-cancel").status_code == 200, "no fault was injected"


@pytest.mark.parametrize("body", [None, {}])
def test_reset_accepts_no_body_or_an_empty_object(emulator: EmulatorServer, body: Any) -> None:
    emulator.set_task("coze", "gone", [{"task_status": "in_progress"}])
    r = requests.post(emulator.base_url + "/_emulator/reset", json=body, timeout=5)
    assert (r.status_code, r.json()) == (200, {"ok": True})
    assert coze_status(emulator, "gone").status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "error"),
    [
        (
            "requests",
            {"taskid": "x"},
            "query of /_emulator/requests: unknown key 'taskid' (did you mean 'task_id'?)",
        ),
        ("stats", {"from": "1"}, "query of /_emulator/stats: unknown key 'from'; known keys: since, until"),
    ],
)
def test_unknown_query_parameters_are_refused(
    emulator: EmulatorServer, path: str, params: dict[str, str], error: str
) -> None:
    r = requests.get(emulator.base_url + "/_emulator/" + path, params=params, timeout=5)
    assert r.status_code == 400
    assert r.json()["error"].startswith(error)


def test_empty_body_is_refused_where_one_is_needed(emulator: EmulatorServer) -> None:
    r = requests.post(emulator.base_url + "/_emulator/tasks", timeout=5)
    assert (r.status_code, r.json()) == (400, {"error": "the body must be JSON, and it is empty"})
