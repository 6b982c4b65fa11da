"""The operators in every mode against the emulator over real HTTP: start, wait, outcome, and resuming
the remote task an earlier try started (the task state store of Airflow 3.3)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.emulator.packages import resource_zip
from airflow_provider_taskstatus.operators.base import REMOTE_TASK_ID_KEY
from airflow_provider_taskstatus.operators.coze import CozeCopyOperator
from airflow_provider_taskstatus.operators.durable import STATE_KEY
from airflow_provider_taskstatus.operators.links import CozeWorkspaceLink, TrueWatchConsoleLink
from airflow_provider_taskstatus.operators.truewatch import TrueWatchExportOperator
from tests.operator_runner import MODES, Instance, QuickCozeCopy, QuickExport, QuickImport, run

FAST = {"poll_interval": 0.02, "retry_backoff": 0.01, "max_retry_backoff": 0.05, "request_timeout": 1}
FAILED_REASONS = [
    {"entity_id": "1", "entity_name": "kb", "entity_type": "knowledge", "failed_reason": "quota"}
]


def copy(**kwargs: Any) -> QuickCozeCopy:
    kwargs = {"entity_id": "wf-1", "entity_type": "workflow", "to_workspace_id": "7498204", **kwargs}
    return QuickCozeCopy(task_id="copy", **FAST, **kwargs)


def statuses(emulator: EmulatorServer, api: str) -> list[dict[str, Any]]:
    return [r for r in emulator.requests(api) if r.get("call") == "status"]


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """What the test has logged so far: Airflow's task loggers write to stderr on some releases."""
    caplog.set_level(logging.INFO)

    def read() -> str:
        out, err = capfd.readouterr()
        return "\n".join([out, err, caplog.text])

    return read


@pytest.fixture
def instance() -> Instance:
    return Instance()


@pytest.fixture
def coze_console() -> Iterator[str]:
    """A Coze connection to the emulator with a console URL, for the links."""
    conn = json.loads(os.environ["AIRFLOW_CONN_COZE_DEFAULT"])
    conn["extra"] = {"console_url": "https://coze.example/"}
    os.environ["AIRFLOW_CONN_COZE_CONSOLE"] = json.dumps(conn)
    yield "coze_console"
    del os.environ["AIRFLOW_CONN_COZE_CONSOLE"]


# -- start and wait: every mode ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_coze_copy_starts_waits_and_returns_the_final_data(
    emulator: EmulatorServer, instance: Instance, mode: str, coze_console: str
) -> None:
    result = run(copy(coze_conn_id=coze_console), instance, mode)
    assert result["task_status"] == "successful"
    assert (result["source_entity_id"], result["target_workspace_id"]) == ("wf-1", "7498204")
    [created] = emulator.started("coze")
    assert instance.ti.xcom[REMOTE_TASK_ID_KEY] == created["task_id"] == result["task_id"]
    assert instance.ti.xcom[CozeWorkspaceLink.xcom_key] == "https://coze.example/space/7498204/develop"
    assert STATE_KEY not in instance.store, "a verdict on the remote task ends its record"


@pytest.mark.parametrize("mode", MODES)
def test_truewatch_export_and_import(
    emulator: EmulatorServer, instance: Instance, mode: str, tmp_path: Path
) -> None:
    export = run(QuickExport(task_id="export", **FAST), instance, mode)
    assert export["status"] == "ok" and export["action"] == "export"
    package = tmp_path / "ops.zip"
    package.write_bytes(resource_zip({"monitor": ["Disk full"], "explorer": ["Logs"]}))
    imported = run(QuickImport(task_id="import", file=str(package), **FAST), Instance(), mode)
    assert imported["status"] == "ok"
    assert imported["import_info"] == {"successCount": 2, "failCount": 0}
    assert emulator.start_count("truewatch") == 2
    # No console is known for the emulator's host: an empty link, so that Airflow 3 finds its XCom.
    assert instance.ti.xcom[TrueWatchConsoleLink.xcom_key] == ""


@pytest.mark.parametrize("mode", MODES)
def test_remote_failure_fails_without_retry_naming_the_reasons(
    emulator: EmulatorServer, instance: Instance, mode: str
) -> None:
    emulator.plan_starts(
        "coze",
        [
            {
                "steps": [
                    {"task_status": "in_progress"},
                    {"task_status": "failed", "failed_reasons": FAILED_REASONS},
                ]
            }
        ],
    )
    with pytest.raises(AirflowFailException, match=r"failed: knowledge 'kb' \(id 1\): quota"):
        run(copy(), instance, mode)
    assert STATE_KEY not in instance.store
    assert emulator.start_count("coze") == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("allow_partial", [False, True])
def test_partial_import(emulator: EmulatorServer, instance: Instance, mode: str, allow_partial: bool) -> None:
    partial = {"status": "ok", "import_info": {"successCount": 1, "failCount": 1}}
    emulator.plan_starts("truewatch", [{"steps": [{"status": "running"}, partial]}])
    operator = QuickImport(
        task_id="import", file=resource_zip({"monitor": ["New"]}), allow_partial=allow_partial, **FAST
    )
    if allow_partial:
        assert run(operator, instance, mode)["import_info"]["failCount"] == 1
    else:
        with pytest.raises(
            AirflowFailException,
            match=r"finished with failures: 1 resource\(s\) failed, 1 succeeded \(traceId: \w+\); set allow_partial=True",
        ):
            run(operator, instance, mode)


@pytest.mark.parametrize("mode", [*MODES, "no-wait"])
def test_import_conflict_fails_without_retry_and_starts_nothing(
    emulator: EmulatorServer, instance: Instance, mode: str
) -> None:
    operator = QuickImport(
        task_id="import",
        file=resource_zip({"monitor": ["CPU usage high"]}),
        wait_for_completion=mode != "no-wait",
        **FAST,
    )
    with pytest.raises(AirflowFailException, match="set repeat_name_op to skip, recover or continue"):
        run(operator, instance, "poke" if mode == "no-wait" else mode)
    assert emulator.start_count() == 0 and STATE_KEY not in instance.store


@pytest.mark.parametrize("mode", [*MODES, "no-wait"])
def test_bot_copied_in_its_workspace_returns_the_copy_without_waiting(
    emulator: EmulatorServer, instance: Instance, mode: str
) -> None:
    operator = copy(
        entity_id="bot-1", entity_type="bot", to_workspace_id=None, wait_for_completion=mode != "no-wait"
    )
    result = run(operator, instance, "poke" if mode == "no-wait" else mode)
    assert set(result) == {"copied_entity_id"} and result["copied_entity_id"]
    assert [s["kind"] for s in emulator.started("coze")] == ["copy"]
    assert statuses(emulator, "coze") == [] and not instance.store


def test_no_wait_returns_the_task_id_at_once(emulator: EmulatorServer, instance: Instance) -> None:
    assert run(QuickExport(task_id="export", wait_for_completion=False, **FAST), instance, "deferrable") == {
        "taskId": emulator.started("truewatch")[0]["task_id"]
    }
    assert statuses(emulator, "truewatch") == [] and not instance.store
    assert instance.ti.xcom[REMOTE_TASK_ID_KEY] == emulator.started("truewatch")[0]["task_id"]


@pytest.mark.parametrize("mode", MODES)
def test_operator_timeout_fails_without_retry_with_the_last_status(
    emulator: EmulatorServer, instance: Instance, mode: str
) -> None:
    emulator.plan_starts("coze", [{"steps": [{"task_status": "in_progress"}]}])
    with pytest.raises(
        AirflowFailException,
        match=r"did not finish within the operator timeout \(0.3 s\); last status: .* is in_progress",
    ):
        run(copy(timeout=0.3), instance, mode)
    assert STATE_KEY not in instance.store


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"entity_type": "plugin"}, "entity_type must be one of bot, app, workflow"),
        ({"entity_id": " "}, "The entity_id is empty"),
    ],
)
def test_bad_arguments_fail_without_retry_and_send_nothing(
    emulator: EmulatorServer, instance: Instance, kwargs: dict[str, Any], text: str
) -> None:
    with pytest.raises(AirflowFailException, match=text):
        run(copy(**kwargs), instance, "poke")
    assert emulator.requests() == []


def test_uncertain_start_fails_without_retry(emulator: EmulatorServer, instance: Instance) -> None:
    emulator.plan_starts("coze", [{"start": {"lost": True}}])
    with pytest.raises(AirflowFailException, match="A remote task may exist, so it was not retried"):
        run(copy(), instance, "deferrable")
    assert emulator.start_count("coze") == 1 and not instance.store


def test_parse_time_checks() -> None:
    with pytest.raises(TypeError, match="wait_for_completion must be True or False, got 'false'"):
        copy(wait_for_completion="false")
    with pytest.raises(ValueError, match=r"poll_interval=0\.5 s is below 1 s"):
        CozeCopyOperator(task_id="c", entity_id="e", entity_type="app", poll_interval=0.5)
    with pytest.warns(UserWarning, match="poll_interval=2 s alone makes 30 requests a minute"):
        TrueWatchExportOperator(task_id="e", poll_interval=2)


def test_trigger_kwargs_hold_no_secret(emulator: EmulatorServer, instance: Instance) -> None:
    operator = copy()
    operator.deferrable = True
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(instance.context())
    _, kwargs = deferred.value.trigger.serialize()
    assert "pat_" not in json.dumps(kwargs)
    assert kwargs["timeout_name"] == "operator timeout (604800 s)"
    assert deferred.value.kwargs == {"remote_task_id": instance.ti.xcom[REMOTE_TASK_ID_KEY]}


# -- durable: a later try resumes the remote task an earlier one started ----------------------------------


def first_try_dies_mid_wait(emulator: EmulatorServer, instance: Instance, operator: Any) -> str:
    """A try that starts the remote task and defers, and is then lost (its triggerer or worker died)."""
    operator.deferrable = True
    with pytest.raises(TaskDeferred):
        operator.execute(instance.context())
    return str(instance.ti.xcom[REMOTE_TASK_ID_KEY])


@pytest.mark.parametrize("mode", MODES)
def test_a_retry_resumes_the_running_remote_task(
    emulator: EmulatorServer, instance: Instance, mode: str, logs: Callable[[], str]
) -> None:
    started = first_try_dies_mid_wait(emulator, instance, copy())
    result = run(copy(), instance, mode)  # the next try: same task instance, same series
    assert result["task_id"] == started and result["task_status"] == "successful"
    assert emulator.start_count("coze") == 1, "no second remote task"
    assert instance.ti.xcom[REMOTE_TASK_ID_KEY] == started, "pushed again: XCom is cleared per try"
    assert f"Resuming Coze task {started}, started by an earlier try" in logs()


def test_a_retry_returns_the_result_of_a_task_that_finished_meanwhile(
    emulator: EmulatorServer, instance: Instance, logs: Callable[[], str]
) -> None:
    emulator.plan_starts("coze", [{"steps": [{"task_status": "successful"}]}])
    started = first_try_dies_mid_wait(emulator, instance, copy())
    result = run(copy(), instance, "deferrable")
    assert result["task_id"] == started and emulator.start_count("coze") == 1
    assert len(statuses(emulator, "coze")) == 1, "one status request, no wait"
    assert "started by an earlier try, has ended" in logs()


@pytest.mark.parametrize("remote", ["failed", "unknown to the service"])
def test_a_retry_starts_anew_when_the_earlier_task_failed(
    emulator: EmulatorServer, instance: Instance, remote: str, logs: Callable[[], str]
) -> None:
    steps = [{"task_status": "failed", "failed_reasons": FAILED_REASONS}] if remote == "failed" else None
    if steps:
        emulator.plan_starts("coze", [{"steps": steps}])
    first = first_try_dies_mid_wait(emulator, instance, copy())
    if remote != "failed":
        instance.store[STATE_KEY]["task_id"] = "forgotten-by-coze"
    result = run(copy(), instance, "poke")
    assert result["task_status"] == "successful" and result["task_id"] != first
    assert emulator.start_count("coze") == 2
    text = logs()
    assert "starting a new one" in text or "this retry starts a new one" in text


def test_a_cleared_task_instance_starts_anew(
    emulator: EmulatorServer, instance: Instance, logs: Callable[[], str]
) -> None:
    first = first_try_dies_mid_wait(emulator, instance, copy())
    instance.clear()
    result = run(copy(), instance, "deferrable")
    assert result["task_id"] != first and emulator.start_count("coze") == 2
    assert f"Coze task {first} was started before this task instance was cleared" in logs()


def test_the_timeout_counts_from_the_remote_start_across_tries(
    emulator: EmulatorServer, instance: Instance
) -> None:
    emulator.plan_starts("coze", [{"steps": [{"task_status": "in_progress"}]}])
    first_try_dies_mid_wait(emulator, instance, copy(timeout=60))
    instance.store[STATE_KEY]["started"] = time.time() - 59.8
    with pytest.raises(AirflowFailException, match="operator timeout"):
        run(copy(timeout=60), instance, "poke")
    assert emulator.start_count("coze") == 1


def test_without_a_state_store_a_retry_starts_anew_and_says_so(
    emulator: EmulatorServer, logs: Callable[[], str]
) -> None:
    instance = Instance(store=None)
    warning = "keeps no task state (3.3+ does): if this task is retried, the retry starts a new Coze task"
    first_try_dies_mid_wait(emulator, instance, copy())
    assert warning in logs()
    run(copy(), instance, "poke")
    assert warning in logs(), "each try says it"
    assert emulator.start_count("coze") == 2


@pytest.mark.parametrize("mode", MODES)
def test_start_and_polls_keep_the_accounts_pace(
    emulator: EmulatorServer, instance: Instance, mode: str
) -> None:
    """The start call and every poll go through the account's throttle: 600 a minute, one per 0.1 s."""
    run(QuickExport(task_id="export", truewatch_conn_id="truewatch_paced", **FAST), instance, mode)
    times = [r["time"] for r in emulator.requests("truewatch")]
    assert len(times) == 4, "the start and three polls"
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.09


# -- the matrix: each operator, each mode, success and remote failure ------------------------------------

OPERATORS = {
    "coze-copy": (
        "coze",
        lambda **kw: copy(**kw),
        {"task_status": "failed", "failed_reasons": FAILED_REASONS},
    ),
    "truewatch-export": ("truewatch", lambda **kw: QuickExport(task_id="export", **FAST, **kw), None),
    "truewatch-import": (
        "truewatch",
        lambda **kw: QuickImport(task_id="import", file=resource_zip({"monitor": ["New"]}), **FAST, **kw),
        None,
    ),
}
FAILURE = {"status": "error", "errorCode": "ft.ResourceImportError", "message": "package damaged"}


@pytest.mark.parametrize("mode", [*MODES, "no-wait"])
@pytest.mark.parametrize("remote", ["success", "failure"])
@pytest.mark.parametrize("name", list(OPERATORS))
def test_each_operator_in_each_mode(
    emulator: EmulatorServer, instance: Instance, name: str, remote: str, mode: str
) -> None:
    api, make, coze_failure = OPERATORS[name]
    failure = coze_failure or FAILURE
    running = {"task_status": "in_progress"} if api == "coze" else {"status": "running"}
    if remote == "failure":
        emulator.plan_starts(api, [{"steps": [running, failure]}])
    operator = make(wait_for_completion=mode != "no-wait")
    if mode == "no-wait" or remote == "success":
        result = run(operator, instance, "poke" if mode == "no-wait" else mode)
    else:
        with pytest.raises(
            AirflowFailException,
            match="failed: " if api == "coze" else "errorCode ft.ResourceImportError: package damaged",
        ):
            run(operator, instance, mode)
        result = None
    [created] = emulator.started(api)
    assert instance.ti.xcom[REMOTE_TASK_ID_KEY] == created["task_id"]
    polls = emulator.requests(api, task_id=created["task_id"], call="status")
    if mode == "no-wait":
        assert result == {operator.start_id_key: created["task_id"]} and polls == []
    elif remote == "success":
        assert result is not None and result.get("task_status", result.get("status")) in ("successful", "ok")
    assert not instance.store, "the record ends with the verdict (or at once without a wait)"
