"""The example DAGs: a fast import check, and every DAG through ``airflow dags test`` against the emulator.

The ``dags``-marked tests share one module fixture that runs all DAGs at once, each in its own
temporary Airflow home cloned from one database migrated once per session; ``scripts/demo.py``
provides the helpers, so ``make demo`` and these tests run DAGs the same way. After the runs, each
run's task states and XComs are read from its home's metadata database, and what the start calls
created from the emulator's record.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.emulator.scripts import entity_ids
from tests.compat import dag_bag
from tests.dag_runs import REPO, demo, explain, run_in_parallel
from tests.emulator_calls import UPLOAD_PATH, coze_data

EXAMPLE_DAGS = {
    "example_coze_copy": ("wait_for_copy", "copy_task_id", "demo-copy-success"),
    "example_truewatch_export": ("wait_for_export", "action_task_id", "demo-export-ok"),
    "example_truewatch_import": ("wait_for_import", "action_task_id", "demo-import-partial"),
}

#: The operator DAGs: dag_id → the tasks that start remote work.
OPERATOR_DAGS = {
    "example_coze_copy_operator": ("copy_workflow", "copy_bot"),
    "example_coze_copy_mapped": ("copy_workflow",),
    "example_truewatch_export_import": ("export_workspace", "import_resources"),
}
#: What the operator DAGs copy, and where to (their params' defaults).
WORKFLOW, BOT, TARGET_WORKSPACE = "7401000000000000001", "7402000000000000001", "7498204883280400002"
MAPPED_WORKFLOWS = ["7401000000000000011", "7401000000000000012", "7401000000000000013"]
#: The resources of the export-import DAG's package that the seeded workspace has not (it has
#: "CPU usage high", which the default options skip, and "Host overview", which they recover).
NEW_RESOURCES = {"monitor": "Disk almost full", "dashboard": "Checkout latency"}

#: name → (spec, the emulator task the run waits for; None: the tasks its operators start).
#: The operator runs come first: they take longest, and the pool runs only a few DAGs at a time.
RUNS: dict[str, tuple[Any, str | None]] = {
    "export_import": (demo.DagRunSpec("example_truewatch_export_import"), None),
    # Monitors whose name exists are refused: the import starts nothing and fails with the conflict.
    "import_conflict": (
        demo.DagRunSpec("example_truewatch_export_import", {"repeat_name_op": "check"}, expected="failed"),
        None,
    ),
    "coze_mapped": (demo.DagRunSpec("example_coze_copy_mapped"), None),
    "coze_operator": (demo.DagRunSpec("example_coze_copy_operator"), None),
    "coze": (demo.DagRunSpec("example_coze_copy"), "demo-copy-success"),
    "coze_failed": (
        demo.DagRunSpec("example_coze_copy", {"copy_task_id": "demo-copy-failed"}, expected="failed"),
        "demo-copy-failed",
    ),
    "export": (demo.DagRunSpec("example_truewatch_export"), "demo-export-ok"),
    "import": (demo.DagRunSpec("example_truewatch_import"), "demo-import-partial"),
    # The e2e DAGs' 8 s sensor timeout, here through `airflow dags test` on every release (the
    # real-process e2e runs on 2.11 and the newest only).
    "timeout": (
        demo.DagRunSpec("e2e_coze_timeout", {"copy_task_id": "dags-timeout"}, expected="failed"),
        "dags-timeout",
    ),
    "timeout_soft_fail": (
        demo.DagRunSpec("e2e_coze_timeout_soft_fail", {"copy_task_id": "dags-timeout-soft"}),
        "dags-timeout-soft",
    ),
}
E2E_DAGS = REPO / "tests" / "e2e" / "dags"
DEFERRED = "[DAG TEST] running trigger in line"


def test_example_dags_import_cleanly() -> None:
    bag = dag_bag(str(demo.DAGS_FOLDER))

    assert bag.import_errors == {}
    assert set(bag.dag_ids) == set(EXAMPLE_DAGS) | set(OPERATOR_DAGS)
    for dag_id, (sensor_id, id_field, default_id) in EXAMPLE_DAGS.items():
        dag = bag.dags[dag_id]  # not get_dag(): that one reads the metadata database
        assert "example" in dag.tags
        assert dag.params[id_field] == default_id
        sensor = dag.get_task(sensor_id)
        assert sensor.deferrable is True  # type: ignore[attr-defined]
        assert sensor.poke_interval <= 3  # type: ignore[attr-defined]
        assert getattr(sensor, id_field) == f"{{{{ params.{id_field} }}}}"
        assert len(sensor.downstream_task_ids) == 1


def test_operator_dags_import_cleanly() -> None:
    bag = dag_bag(str(demo.DAGS_FOLDER))
    assert bag.import_errors == {}

    coze = bag.dags["example_coze_copy_operator"]
    workflow, bot = (coze.get_task(t) for t in OPERATOR_DAGS["example_coze_copy_operator"])
    assert (workflow.entity_id, workflow.entity_type) == ("{{ params.workflow_id }}", "workflow")
    assert workflow.to_workspace_id == "{{ params.to_workspace_id }}"
    assert workflow.deferrable is True and workflow.poll_interval <= 1
    assert (bot.entity_type, bot.to_workspace_id) == ("bot", None)  # same workspace: synchronous
    assert coze.params["workflow_id"] == WORKFLOW and coze.params["bot_id"] == BOT
    assert coze.params["to_workspace_id"] == TARGET_WORKSPACE

    mapped = bag.dags["example_coze_copy_mapped"].get_task("copy_workflow")
    assert mapped.expand_input.value == {"entity_id": MAPPED_WORKFLOWS}
    assert mapped.partial_kwargs["deferrable"] is True
    assert mapped.downstream_task_ids == {"summarize_copies"}

    truewatch = bag.dags["example_truewatch_export_import"]
    export, imports = (truewatch.get_task(t) for t in OPERATOR_DAGS["example_truewatch_export_import"])
    assert export.deferrable is True and imports.deferrable is True
    assert export.poll_interval >= 3 and imports.poll_interval >= 3  # the API's 20 calls a minute
    assert imports.upstream_task_ids == {"export_workspace", "write_package"}
    assert "xcom_pull(task_ids='write_package'" in str(imports.file)
    assert imports.repeat_name_op == "{{ params.repeat_name_op }}"
    assert imports.repeat_identifier_op == "{{ params.repeat_identifier_op }}"
    assert (truewatch.params["repeat_name_op"], truewatch.params["repeat_identifier_op"]) == (
        "skip",
        "recover",
    )
    assert truewatch.get_task("report").upstream_task_ids == {"export_workspace", "import_resources"}

    for dag_id in OPERATOR_DAGS:
        assert "example" in bag.dags[dag_id].tags


@dataclass(frozen=True)
class Run:
    result: Any  # demo.DagResult
    #: The emulator's log of the status requests for the task(s) the run waited for.
    requests: list[dict[str, Any]]
    #: The run's task instance states, by (task_id, map_index), from its metadata database.
    states: dict[tuple[str, int], str] = field(default_factory=dict)
    #: The run's XComs, by (task_id, map_index, key), decoded.
    xcoms: dict[tuple[str, int, str], Any] = field(default_factory=dict)

    def remote_ids(self) -> list[str]:
        return remote_ids(self.xcoms)


@dataclass(frozen=True)
class Ran:
    """Every run, and what the emulator knew right after them."""

    runs: dict[str, Run]
    #: Every remote side effect of a start call, oldest first (``EmulatorServer.started()``).
    started: list[dict[str, Any]]
    #: Every start request the emulator received.
    start_requests: list[dict[str, Any]]
    #: Each started Coze copy task's ``data``, asked over HTTP after the runs, by task id.
    copies: dict[str, dict[str, Any]]
    #: The TrueWatch workspace's resources after the runs.
    resources: dict[str, list[str]]

    def starts_of(self, entity_id: str) -> list[dict[str, Any]]:
        return [s for s in self.started if s.get("entity_id") == entity_id]


def remote_ids(xcoms: dict[tuple[str, int, str], Any]) -> list[str]:
    """The remote task ids a run's operators pushed (``remote_task_id``), by task and map index."""
    return [value for (_, _, key), value in sorted(xcoms.items()) if key == "remote_task_id"]


def _decode(value: Any) -> Any:
    """An XCom value as stored: JSON bytes (2.11), JSON text (3.x), or a bare SQLite number."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def read_run(home: Path, dag_id: str) -> tuple[dict[tuple[str, int], str], dict[tuple[str, int, str], Any]]:
    """Task states and XComs of ``dag_id`` in a run's own home (it holds that one run)."""
    with closing(sqlite3.connect(home / "airflow.db")) as db:
        states = {
            (task_id, map_index): state
            for task_id, map_index, state in db.execute(
                "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ?", (dag_id,)
            )
        }
        xcoms = {
            (task_id, map_index, key): _decode(value)
            for task_id, map_index, key, value in db.execute(
                "SELECT task_id, map_index, key, value FROM xcom WHERE dag_id = ?", (dag_id,)
            )
        }
    return states, xcoms


@pytest.fixture(scope="module")
def ran(
    tmp_path_factory: pytest.TempPathFactory, taskstatus_emulator: EmulatorServer, migrated_airflow_home: Path
) -> Ran:
    """Every run of RUNS, in parallel: each in a clone of the migrated home, so SQLite is never shared."""
    taskstatus_emulator.reset()
    for task_id in ("dags-timeout", "dags-timeout-soft"):
        taskstatus_emulator.set_task("coze", task_id, [{"task_status": "in_progress"}])
    homes: dict[str, Path] = {}

    def adjust_env(name: str, spec: Any, env: dict[str, str]) -> None:
        homes[name] = Path(env["AIRFLOW_HOME"])
        if spec.dag_id.startswith("e2e_"):
            env["AIRFLOW__CORE__DAGS_FOLDER"] = str(E2E_DAGS)
            env["AIRFLOW_CONN_COZE_TIMEOUT_ACCOUNT"] = env["AIRFLOW_CONN_COZE_DEFAULT"]

    specs = {name: spec for name, (spec, _) in RUNS.items()}
    # One more run than cores: the runs spend much of their time waiting on polls (3 at once on 2
    # cores: ~100 s for the 10 runs instead of ~120 s).
    results = run_in_parallel(
        specs,
        tmp_path_factory,
        taskstatus_emulator,
        migrated_airflow_home,
        adjust_env,
        max_workers=(os.cpu_count() or 2) + 1,
    )
    runs = {}
    for name, (spec, task_id) in RUNS.items():
        states, xcoms = read_run(homes[name], spec.dag_id)
        waited = [task_id] if task_id is not None else remote_ids(xcoms)
        requests = [r for t in waited for r in taskstatus_emulator.requests(task_id=t, call="status")]
        runs[name] = Run(results[name], requests, states, xcoms)
    started = taskstatus_emulator.started()
    return Ran(
        runs,
        started,
        taskstatus_emulator.requests(call="start"),
        {
            s["task_id"]: coze_data(taskstatus_emulator, s["task_id"])
            for s in started
            if s["kind"] == "task" and s["api"] == "coze"
        },
        taskstatus_emulator.workspace_resources(),
    )


@pytest.fixture(scope="module")
def runs(ran: Ran) -> dict[str, Run]:
    return ran.runs


def _assert_deferred_and_polled(run: Run, min_polls: int) -> None:
    """The sensor poked once, deferred, and the trigger polled the emulator with a valid credential."""
    assert DEFERRED in run.result.output, explain(run.result)
    assert len(run.requests) >= min_polls
    assert all(r["auth_valid"] and r["http_status"] == 200 for r in run.requests)


@pytest.mark.dags
def test_coze_copy_success_feeds_the_copied_entity_downstream(runs: dict[str, Run]) -> None:
    run = runs["coze"]
    assert run.result.state == "success", explain(run.result)
    assert run.result.returncode == 0
    _assert_deferred_and_polled(run, min_polls=4)  # in_progress x3, then successful
    target = entity_ids("demo-copy-success")["target_entity_id"]
    assert run.result.returned == [target]  # the downstream task's return value
    assert f"Copied bot is {target} in workspace" in run.result.output


@pytest.mark.dags
def test_coze_copy_failure_fails_the_run_with_reasons_and_logid(runs: dict[str, Run]) -> None:
    run = runs["coze_failed"]
    assert run.result.state == "failed", explain(run.result)
    assert run.result.returncode != 0
    _assert_deferred_and_polled(run, min_polls=2)
    assert "AirflowFailException" in run.result.output
    failure = run.result.failure
    assert failure is not None
    assert "Coze copy task 'demo-copy-failed'" in failure
    assert "资源配额不足，无法完成复制" in failure
    assert "知识库文件仍在处理中，暂不支持复制" in failure
    assert re.search(r"\(logid: \w{8,}\)", failure), failure
    assert run.result.returned == []  # the downstream task never ran


@pytest.mark.dags
def test_truewatch_export_feeds_content_downstream(runs: dict[str, Run]) -> None:
    run = runs["export"]
    assert run.result.state == "success", explain(run.result)
    _assert_deferred_and_polled(run, min_polls=4)  # start, running x2, then ok
    assert run.result.returned == ["export ok"]


@pytest.mark.dags
def test_truewatch_partial_import_is_accepted_and_counts_reach_downstream(runs: dict[str, Run]) -> None:
    run = runs["import"]
    assert run.result.state == "success", explain(run.result)
    _assert_deferred_and_polled(run, min_polls=2)  # running, then ok with failCount 2
    assert "(accepted: allow_partial=True)" in run.result.output
    assert run.result.returned == [str({"successCount": 10, "failCount": 2})]
    assert "Imported 10 resources, 2 failed" in run.result.output


@pytest.mark.dags
def test_timeout_while_deferred_is_a_sensor_timeout(runs: dict[str, Run]) -> None:
    run = runs["timeout"]
    assert run.result.state == "failed", explain(run.result)
    _assert_deferred_and_polled(run, min_polls=3)  # about one poll a second for 8 s
    assert "AirflowSensorTimeout" in run.result.output, explain(run.result)
    assert "did not finish within the sensor timeout" in (run.result.failure or ""), explain(run.result)
    assert "last status:" in (run.result.failure or ""), run.result.failure


@pytest.mark.dags
def test_timeout_with_soft_fail_skips_the_sensor(runs: dict[str, Run]) -> None:
    run = runs["timeout_soft_fail"]
    assert run.result.state == "success", explain(run.result)  # every task skipped: the run succeeds
    _assert_deferred_and_polled(run, min_polls=3)
    assert "AirflowSensorTimeout" not in (run.result.failure or "")
    assert run.result.returned == [], "the downstream task was skipped"


# -- the operators ---------------------------------------------------------------------------------


def _assert_waited(run: Run, deferrals: int, min_polls: int) -> None:
    """Each waiting operator deferred once; the triggers polled its remote task with a valid credential."""
    assert run.result.output.count(DEFERRED) == deferrals, explain(run.result)
    assert len(run.requests) >= min_polls, explain(run.result)
    assert all(r["auth_valid"] and r["http_status"] == 200 for r in run.requests)


@pytest.mark.dags
def test_coze_copy_operator_copies_a_workflow_and_a_bot_and_feeds_both_downstream(ran: Ran) -> None:
    run = ran.runs["coze_operator"]
    assert run.result.state == "success", explain(run.result)
    assert run.states == {(task, -1): "success" for task in ("copy_workflow", "copy_bot", "use_copies")}
    # The workflow copy: one copy task, started, deferred, polled to its end (in_progress x2, successful).
    [started] = ran.starts_of(WORKFLOW)
    assert started["kind"] == "task" and started["answered"]
    assert run.xcoms[("copy_workflow", -1, "remote_task_id")] == started["task_id"]
    _assert_waited(run, deferrals=1, min_polls=3)
    data = ran.copies[started["task_id"]]
    assert (data["source_entity_id"], data["target_workspace_id"]) == (WORKFLOW, TARGET_WORKSPACE)
    assert run.xcoms[("copy_workflow", -1, "return_value")] == data  # the copy task's final data
    # The bot, in its own workspace: copied within the call, no task, nothing waited for.
    [bot] = ran.starts_of(BOT)
    assert (bot["kind"], bot["task_id"], bot["answered"]) == ("copy", None, True)
    copied = run.xcoms[("copy_bot", -1, "return_value")]
    assert list(copied) == ["copied_entity_id"]
    assert ("copy_bot", -1, "remote_task_id") not in run.xcoms
    # Both reached the downstream task.
    assert run.xcoms[("use_copies", -1, "return_value")] == (
        f"workflow {data['target_entity_id']} in workspace {TARGET_WORKSPACE}; bot {copied['copied_entity_id']}"
    )
    assert run.result.returned == [run.xcoms[("use_copies", -1, "return_value")]]


@pytest.mark.dags
def test_mapped_copies_start_one_copy_each_and_the_summary_gets_every_result(ran: Ran) -> None:
    run = ran.runs["coze_mapped"]
    assert run.result.state == "success", explain(run.result)
    indexes = range(len(MAPPED_WORKFLOWS))
    assert run.states == {("copy_workflow", i): "success" for i in indexes} | {
        ("summarize_copies", -1): "success"
    }
    _assert_waited(run, deferrals=len(MAPPED_WORKFLOWS), min_polls=3 * len(MAPPED_WORKFLOWS))
    summary = {}
    for i, workflow in enumerate(MAPPED_WORKFLOWS):  # map index i copies the i-th workflow
        [started] = ran.starts_of(workflow)
        assert started["kind"] == "task" and started["answered"]
        assert run.xcoms[("copy_workflow", i, "remote_task_id")] == started["task_id"]
        data = ran.copies[started["task_id"]]
        assert run.xcoms[("copy_workflow", i, "return_value")] == data
        assert (data["source_entity_id"], data["target_workspace_id"]) == (workflow, TARGET_WORKSPACE)
        summary[workflow] = data["target_entity_id"]
    assert run.xcoms[("summarize_copies", -1, "return_value")] == summary
    assert len(set(summary.values())) == len(MAPPED_WORKFLOWS)  # three copies, not one three times


@pytest.mark.dags
def test_export_then_import_with_conflict_options_feeds_both_contents_downstream(ran: Ran) -> None:
    run = ran.runs["export_import"]
    assert run.result.state == "success", explain(run.result)
    tasks = ("export_workspace", "write_package", "import_resources", "report", "remove_package")
    assert run.states == {(task, -1): "success" for task in tasks}
    _assert_waited(run, deferrals=2, min_polls=6)  # export: start, running, ok; import: running x2, ok
    export_id = run.xcoms[("export_workspace", -1, "remote_task_id")]
    import_id = run.xcoms[("import_resources", -1, "remote_task_id")]
    by_id = {s["task_id"]: s for s in ran.started}
    assert (by_id[export_id]["action"], by_id[import_id]["action"]) == ("export", "import")
    assert run.xcoms[("export_workspace", -1, "return_value")]["status"] == "ok"
    # skip the existing monitor, recover the existing dashboard: 3 of the package's 4 resources.
    content = run.xcoms[("import_resources", -1, "return_value")]
    assert (content["status"], content["import_info"]) == ("ok", {"successCount": 3, "failCount": 0})
    assert run.xcoms[("report", -1, "return_value")] == {
        "export": "ok",
        "import": "ok",
        "successCount": 3,
        "failCount": 0,
    }
    assert all(name in ran.resources[kind] for kind, name in NEW_RESOURCES.items()), ran.resources
    # The package reached the import through XCom and was removed afterwards.
    package = Path(run.xcoms[("write_package", -1, "return_value")])
    assert f"TrueWatch import of {package.name!r} started" in run.result.output, explain(run.result)
    assert not package.exists()


@pytest.mark.dags
def test_an_import_conflict_fails_the_task_naming_the_option_and_starts_nothing(ran: Ran) -> None:
    run = ran.runs["import_conflict"]
    assert run.result.state == "failed", explain(run.result)
    assert run.result.returncode != 0
    assert run.states == {
        ("export_workspace", -1): "success",
        ("write_package", -1): "success",
        ("import_resources", -1): "failed",
        ("report", -1): "upstream_failed",
        ("remove_package", -1): "success",  # all_done: the package is removed anyway
    }
    assert "AirflowFailException" in run.result.output  # no retry: it would be refused the same way
    failure = run.result.failure or ""
    assert re.match(r"TrueWatch import of 'truewatch-resources-\w+\.zip' not started: ", failure), failure
    assert "resources already exist in the workspace" in failure
    assert 'monitors with the same name: ["CPU usage high"' in failure
    assert "(set repeat_name_op to skip, recover or continue)" in failure
    assert "repeat_identifier_op" not in failure  # the dashboard's conflict was resolved (recover)
    assert re.search(r"\(traceId: \w{16,}\)", failure), failure
    # The export ran and deferred; the refused import has no remote task.
    _assert_waited(run, deferrals=1, min_polls=3)
    assert ("import_resources", -1, "remote_task_id") not in run.xcoms
    assert ("report", -1, "return_value") not in run.xcoms
    assert not Path(run.xcoms[("write_package", -1, "return_value")]).exists()


@pytest.mark.dags
def test_every_operator_task_started_exactly_one_remote_task(ran: Ran) -> None:
    """Across all the runs: one start per operator task instance (3 for the 3 mapped), no more."""
    coze = sorted(s["entity_id"] for s in ran.started if s["api"] == "coze")
    assert coze == sorted([WORKFLOW, BOT, *MAPPED_WORKFLOWS])
    actions = sorted(s["action"] for s in ran.started if s["api"] == "truewatch")
    assert actions == ["export", "export", "import"]  # the conflict run's import created nothing
    assert all(s["answered"] for s in ran.started)
    # Each remote task an operator pushed is one the emulator created, and the reverse.
    pushed = [task_id for run in ran.runs.values() for task_id in run.remote_ids()]
    assert sorted(pushed) == sorted(s["task_id"] for s in ran.started if s["task_id"] is not None)
    # The refused upload was sent once: two uploads in all, one per run of the export-import DAG.
    assert sum(r["raw_path"] == UPLOAD_PATH for r in ran.start_requests) == 2
    assert len(ran.start_requests) == len(ran.started) + 1  # every start created something but that one
