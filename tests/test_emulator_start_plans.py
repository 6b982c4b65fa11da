"""The emulator's start plans over real loopback HTTP: scripted lifecycles, match, repeat, every
start fault, and the strict checks of the plans themselves.

Each fault is checked by what the client received *and* by what the emulator says was created.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from airflow_provider_taskstatus.emulator import EmulatorServer, resource_zip
from tests.emulator_calls import (
    CLASHING,
    NEW_PACKAGE,
    control,
    copy_start,
    coze_data,
    export_start,
    tw_content,
    upload,
    wait_for,
)

# --- plans: lifecycles, match, repeat ----------------------------------------------------------


def test_plan_steps_script_the_created_tasks_lifecycle(emulator: EmulatorServer) -> None:
    reasons = [{"entity_id": "1", "entity_name": "kb", "entity_type": "knowledge", "failed_reason": "busy"}]
    emulator.plan_starts(
        "coze",
        [{"steps": [{"task_status": "in_progress"}, {"task_status": "failed", "failed_reasons": reasons}]}],
    )
    task_id = copy_start(emulator, {"entity_id": "wf", "entity_type": "workflow"}).json()["data"]["task_id"]
    assert coze_data(emulator, task_id)["task_status"] == "in_progress"
    data = coze_data(emulator, task_id)
    assert (data["task_status"], data["failed_reasons"], data["source_entity_id"]) == (
        "failed",
        reasons,
        "wf",
    )
    emulator.plan_starts(
        "truewatch", [{"steps": [{"status": "error", "errorCode": "ft.Broken", "message": "no"}]}]
    )
    content = tw_content(emulator, export_start(emulator).json()["content"]["taskId"])
    assert (content["status"], content["action"], content["errorCode"]) == ("error", "export", "ft.Broken")
    next_task = copy_start(emulator, {"entity_id": "wf", "entity_type": "workflow"}).json()["data"]["task_id"]
    assert coze_data(emulator, next_task)["task_status"] == "in_progress", (
        "a used plan is gone: defaults again"
    )


def test_timed_plan_steps(emulator: EmulatorServer) -> None:
    emulator.plan_starts("truewatch", [{"steps": [{"status": "running", "seconds": 0.3}, {"status": "ok"}]}])
    task_id = export_start(emulator).json()["content"]["taskId"]
    assert [tw_content(emulator, task_id)["status"] for _ in range(3)] == ["running"] * 3
    time.sleep(0.35)
    assert tw_content(emulator, task_id)["status"] == "ok"


def test_matched_plan_is_preferred_and_others_keep_their_order(emulator: EmulatorServer) -> None:
    emulator.plan_starts(
        "coze",
        [
            {"steps": [{"task_status": "successful"}]},
            {"match": {"entity_id": "wf-2"}, "steps": [{"task_status": "failed"}]},
            {"steps": [{"task_status": "in_progress"}]},
        ],
    )

    def final(entity: str) -> str:
        task_id = copy_start(emulator, {"entity_id": entity, "entity_type": "workflow"}).json()["data"][
            "task_id"
        ]
        return str(coze_data(emulator, task_id)["task_status"])

    assert final("wf-2") == "failed"
    assert final("wf-2") == "successful", "the matched plan is used up: the first unmatched one follows"
    assert final("wf-1") == "in_progress"


def test_truewatch_match_on_action(emulator: EmulatorServer) -> None:
    emulator.plan_starts(
        "truewatch",
        [
            {"match": {"action": "import"}, "steps": [{"status": "cancel"}]},
            {"match": {"action": "export"}, "steps": [{"status": "error"}]},
        ],
    )
    exported = export_start(emulator).json()["content"]["taskId"]
    imported = upload(emulator).json()["content"]["taskId"]
    assert (tw_content(emulator, exported)["status"], tw_content(emulator, imported)["status"]) == (
        "error",
        "cancel",
    )


def test_plan_repeat_answers_several_starts(emulator: EmulatorServer) -> None:
    r = control(
        emulator,
        "POST",
        "starts",
        json={"api": "coze", "plans": [{"repeat": 3, "start": {"code": 4020, "msg": "slow"}}]},
    )
    assert (r.status_code, r.json()) == (201, {"api": "coze", "plans": 1, "pending": 3})
    answers = [copy_start(emulator, {"entity_id": "w", "entity_type": "workflow"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 429, 200]
    assert emulator.start_count() == 1


def test_steps_plans_wait_for_a_start_that_creates_a_task(emulator: EmulatorServer) -> None:
    """A same-workspace bot copy and a conflicting import have no task to script: the plan waits."""
    emulator.plan_starts("coze", [{"steps": [{"task_status": "failed"}]}])
    assert "copied_entity_id" in copy_start(emulator, {"entity_id": "b", "entity_type": "bot"}).json()["data"]
    task_id = copy_start(emulator, {"entity_id": "a", "entity_type": "app"}).json()["data"]["task_id"]
    assert coze_data(emulator, task_id)["task_status"] == "failed"

    emulator.plan_starts("truewatch", [{"start": {"lost": True}}, {"steps": [{"status": "cancel"}]}])
    assert "repeat_name" in upload(emulator, CLASHING).json()["content"], (
        "a conflict uses no plan that creates"
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        upload(emulator)
    task_id = upload(emulator, resource_zip({"monitor": ["Another"]})).json()["content"]["taskId"]
    assert tw_content(emulator, task_id)["status"] == "cancel"


# --- plans: start faults -------------------------------------------------------------------------


def test_raw_answer_creates_nothing(emulator: EmulatorServer) -> None:
    emulator.plan_starts(
        "coze",
        [{"start": {"http_status": 503, "body": "<html>busy</html>", "headers": {"Retry-After": "2"}}}],
    )
    r = copy_start(emulator, {"entity_id": "w", "entity_type": "workflow"})
    assert (r.status_code, r.text, r.headers["Retry-After"]) == (503, "<html>busy</html>", "2")
    assert r.headers["Content-Type"].startswith("text/html")
    assert emulator.started() == []
    (logged,) = emulator.requests(call="start")
    assert (logged["task_id"], logged["http_status"]) == (None, 503)


def test_reset_creates_nothing(emulator: EmulatorServer) -> None:
    emulator.plan_starts("truewatch", [{"start": {"reset": True}}])
    with pytest.raises(requests.exceptions.ConnectionError):
        export_start(emulator)
    assert emulator.started() == []
    assert [e["http_status"] for e in emulator.requests(call="start")] == [None]


@pytest.mark.parametrize(
    ("api", "start", "status", "fields"),
    [
        (
            "coze",
            {"code": 4020, "msg": "rate limited"},
            429,
            {"code": 4020, "msg": "rate limited", "data": None},
        ),
        ("coze", {"code": 5000}, 200, {"code": 5000, "msg": "emulated error 5000", "data": None}),
        (
            "truewatch",
            {"errorCode": "ft.TriggerApiAkCurrentLimiting"},
            401,
            {"code": 401, "errorCode": "ft.TriggerApiAkCurrentLimiting", "success": False, "content": None},
        ),
        (
            "truewatch",
            {"errorCode": "ft.Busy", "http_status": 503},
            503,
            {"code": 503, "message": "emulated error ft.Busy"},
        ),
    ],
)
def test_envelope_errors_create_nothing(
    emulator: EmulatorServer, api: str, start: dict[str, Any], status: int, fields: dict[str, Any]
) -> None:
    emulator.plan_starts(api, [{"start": start}])
    r = (
        copy_start(emulator, {"entity_id": "w", "entity_type": "app"})
        if api == "coze"
        else export_start(emulator)
    )
    assert r.status_code == status
    body = r.json()
    assert {k: body[k] for k in fields} == fields
    assert emulator.started() == []


def test_lost_answer_creates_exactly_one_task_and_a_retry_a_second(emulator: EmulatorServer) -> None:
    emulator.plan_starts("coze", [{"start": {"lost": True}}])
    with pytest.raises(requests.exceptions.ConnectionError):
        copy_start(emulator, {"entity_id": "wf-9", "entity_type": "workflow"})
    (lost,) = emulator.started()
    assert (lost["kind"], lost["entity_id"], lost["answered"]) == ("task", "wf-9", False)
    assert coze_data(emulator, lost["task_id"])["task_status"] == "in_progress", "the task exists and runs"
    (logged,) = emulator.requests(call="start")
    assert (logged["task_id"], logged["http_status"]) == (lost["task_id"], None)

    retried = copy_start(emulator, {"entity_id": "wf-9", "entity_type": "workflow"}).json()["data"]["task_id"]
    assert retried != lost["task_id"]
    assert [(s["task_id"], s["answered"]) for s in emulator.started()] == [
        (lost["task_id"], False),
        (retried, True),
    ]


def test_lost_bot_copy_is_recorded_too(emulator: EmulatorServer) -> None:
    emulator.plan_starts("coze", [{"start": {"lost": True}}])
    with pytest.raises(requests.exceptions.ConnectionError):
        copy_start(emulator, {"entity_id": "b", "entity_type": "bot"})
    assert [(s["kind"], s["task_id"], s["answered"]) for s in emulator.started()] == [("copy", None, False)]


def test_lost_then_gateway_error(emulator: EmulatorServer) -> None:
    emulator.plan_starts("truewatch", [{"start": {"lost": True, "http_status": 502, "body": "bad gateway"}}])
    r = upload(emulator)
    assert (r.status_code, r.text) == (502, "bad gateway")
    (started,) = emulator.started()
    assert (started["action"], started["answered"]) == ("import", False)
    assert tw_content(emulator, started["task_id"])["status"] == "running"
    assert emulator.requests(call="start")[0]["task_id"] == started["task_id"]


def test_lost_then_envelope_error(emulator: EmulatorServer) -> None:
    emulator.plan_starts("coze", [{"start": {"lost": True, "code": 5000, "msg": "internal"}}])
    r = copy_start(emulator, {"entity_id": "w", "entity_type": "workflow"})
    assert (r.status_code, r.json()["code"]) == (200, 5000)
    assert [s["answered"] for s in emulator.started()] == [False]


def test_lost_with_delay_is_a_client_timeout_after_creation(emulator: EmulatorServer) -> None:
    emulator.plan_starts("truewatch", [{"start": {"lost": True, "delay": 0.5}}])
    with pytest.raises(requests.exceptions.ReadTimeout):
        export_start(emulator, timeout=0.1)
    (started,) = emulator.started()  # created before the answer was due
    assert started["answered"] is False
    wait_for(lambda: emulator.requests(call="start"))
    assert emulator.started()[0]["answered"] is False, "the client had gone when the answer was ready"
    assert tw_content(emulator, started["task_id"])["status"] == "start"


def test_delay_with_steps_creates_after_the_delay_and_a_patient_client_gets_the_answer(
    emulator: EmulatorServer,
) -> None:
    emulator.plan_starts("coze", [{"start": {"delay": 0.3}, "steps": [{"task_status": "successful"}]}])
    begun = time.monotonic()
    r = copy_start(emulator, {"entity_id": "w", "entity_type": "workflow"})
    assert time.monotonic() - begun >= 0.3
    assert coze_data(emulator, r.json()["data"]["task_id"])["task_status"] == "successful"
    (started,) = emulator.started()
    assert started["answered"] is True
    assert started["time"] >= emulator.requests(call="start")[0]["time"] + 0.3


def test_truncated_answer_still_creates(emulator: EmulatorServer) -> None:
    emulator.plan_starts("coze", [{"start": {"truncate": True}}])
    r = copy_start(emulator, {"entity_id": "w", "entity_type": "workflow"})
    assert r.status_code == 200
    assert r.text.startswith('{"code": 0')
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)
    (started,) = emulator.started()
    assert started["answered"] is False
    assert coze_data(emulator, started["task_id"])["task_status"] == "in_progress"


def test_planned_repeat_conflict(emulator: EmulatorServer) -> None:
    emulator.plan_starts("truewatch", [{"start": {"repeat_conflict": ["Ops", "Pipelines"]}}])
    assert export_start(emulator).status_code == 200, "an export does not take an import's conflict plan"
    content = upload(emulator, CLASHING).json()["content"]
    assert content == {
        "repeat_name": ["CPU usage high"],
        "repeat_identifier": ["Host overview"],
        "repeat_conflict": ["Ops", "Pipelines"],
    }
    emulator.plan_starts("truewatch", [{"start": {"repeat_conflict": ["Ops"]}}])
    content = upload(emulator, NEW_PACKAGE, {"repeatNameOp": "recover"}).json()["content"]
    assert content == {"repeat_name": [], "repeat_identifier": [], "repeat_conflict": ["Ops"]}
    assert [s["action"] for s in emulator.started()] == ["export"]
    assert "taskId" in upload(emulator).json()["content"]


# --- plans: strict validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "plans", "error", "known"),
    [
        (
            "coze",
            [{"step": [{"task_status": "x"}]}],
            "plan 0: unknown key 'step' (did you mean 'steps'?); known keys: match, repeat, start, steps",
            ["match", "repeat", "start", "steps"],
        ),
        (
            "coze",
            [{"start": {"lost": True, "delays": 1}}],
            "plan 0: start (coze): unknown key 'delays' (did you mean 'delay'?); known keys: "
            "body, code, delay, headers, http_status, lost, msg, reset, truncate",
            ["body", "code", "delay", "headers", "http_status", "lost", "msg", "reset", "truncate"],
        ),
        (
            "coze",
            [{"start": {"repeat_conflict": ["x"]}}],
            "plan 0: start (coze): unknown key 'repeat_conflict'; known keys: "
            "body, code, delay, headers, http_status, lost, msg, reset, truncate",
            ["body", "code", "delay", "headers", "http_status", "lost", "msg", "reset", "truncate"],
        ),
        (
            "truewatch",
            [{"match": {"entity_id": "x"}, "steps": [{"status": "ok"}]}],
            "plan 0: match (truewatch): unknown key 'entity_id'; known keys: action",
            ["action"],
        ),
    ],
)
def test_unknown_plan_keys_are_refused_with_the_known_keys(
    emulator: EmulatorServer, api: str, plans: list[dict[str, Any]], error: str, known: list[str]
) -> None:
    r = control(emulator, "POST", "starts", json={"api": api, "plans": plans})
    assert (r.status_code, r.json()) == (400, {"error": error, "known_keys": known})
    with pytest.raises(ValueError) as caught:  # noqa: PT011  # the exact message is asserted below
        emulator.plan_starts(api, plans)
    assert str(caught.value) == error


@pytest.mark.parametrize(
    ("plans", "error"),
    [
        ([], "plans must be a non-empty list"),
        ([{}], "plan 0: needs start or steps (or both)"),
        (["x"], "plan 0: must be an object"),
        (
            [{"steps": [{"task_status": "x", "repeats": 2}]}],
            "plan 0: step 0 (coze): unknown key 'repeats' (did you mean 'repeat'?)",
        ),
        ([{"steps": []}], "plan 0: steps must be a non-empty list"),
        ([{"steps": [{"status": "ok"}]}], "plan 0: step 0 (coze): unknown key 'status'"),
        ([{"repeat": 0, "start": {"reset": True}}], "plan 0: repeat must be a positive integer, got 0"),
        ([{"start": {}}], "plan 0: start: needs one of"),
        ([{"start": {"reset": False}}], "plan 0: start: needs one of"),
        ([{"start": {"lost": "yes"}}], "plan 0: start: lost must be true or false, got 'yes'"),
        ([{"start": {"delay": -1}}], "plan 0: start: delay must be a non-negative number of seconds, got -1"),
        ([{"start": {"code": "4020"}}], "plan 0: start: code must be an integer"),
        ([{"start": {"code": 4020, "msg": 1}}], "plan 0: start: msg must be a string"),
        (
            [{"start": {"http_status": 503}, "steps": [{"task_status": "x"}]}],
            "plan 0: steps are never used: this start creates nothing (add lost to create)",
        ),
        (
            [{"match": {"entity_type": "plugin"}, "start": {"reset": True}}],
            "plan 0: match entity_type must be one of",
        ),
        (
            [{"match": {"entity_id": ""}, "start": {"reset": True}}],
            "plan 0: match entity_id must be a non-empty string",
        ),
        ([{"start": {"reset": True}}, {"start": {"delay": "1"}}], "plan 1: start: delay must be"),
    ],
)
def test_bad_coze_plans_are_refused_and_nothing_is_queued(
    emulator: EmulatorServer, plans: list[Any], error: str
) -> None:
    r = control(emulator, "POST", "starts", json={"api": "coze", "plans": plans})
    assert r.status_code == 400
    assert r.json()["error"].startswith(error)
    assert copy_start(emulator, {"entity_id": "w", "entity_type": "workflow"}).status_code == 200, (
        "no plan was queued"
    )


@pytest.mark.parametrize(
    ("plans", "error"),
    [
        (
            [{"start": {"repeat_conflict": []}}],
            "plan 0: start: repeat_conflict must be a non-empty list of names (strings)",
        ),
        (
            [{"start": {"repeat_conflict": ["Ops"], "lost": True}}],
            "plan 0: start: repeat_conflict is the whole answer: it takes only delay and headers, not lost",
        ),
        (
            [{"match": {"action": "export"}, "start": {"repeat_conflict": ["Ops"]}}],
            "plan 0: repeat_conflict answers imports only, but match says 'export'",
        ),
        (
            [{"match": {"action": "delete"}, "start": {"reset": True}}],
            "plan 0: match action must be one of ['export', 'import'], got 'delete'",
        ),
        ([{"start": {"errorCode": 1}}], "plan 0: start: errorCode must be a string"),
    ],
)
def test_bad_truewatch_plans_are_refused(emulator: EmulatorServer, plans: list[Any], error: str) -> None:
    r = control(emulator, "POST", "starts", json={"api": "truewatch", "plans": plans})
    assert (r.status_code, r.json()["error"]) == (400, error)


def test_starts_body_is_strict(emulator: EmulatorServer) -> None:
    r = control(emulator, "POST", "starts", json={"api": "coze", "plan": []})
    assert (r.status_code, r.json()["known_keys"]) == (400, ["api", "plans"])
    r = control(emulator, "POST", "starts", json={"api": "slack", "plans": [{"start": {"reset": True}}]})
    assert (r.status_code, r.json()["error"]) == (
        400,
        "api must be one of ['coze', 'truewatch'], got 'slack'",
    )


def test_a_raw_answer_hides_an_import_conflict(emulator: EmulatorServer) -> None:
    emulator.plan_starts("truewatch", [{"start": {"http_status": 503, "body": "<html>busy</html>"}}])
    r = upload(emulator, CLASHING)
    assert (r.status_code, r.text) == (503, "<html>busy</html>")
    assert emulator.started() == []
    assert upload(emulator, CLASHING).json()["content"]["repeat_name"] == ["CPU usage high"], (
        "the plan is used up"
    )
