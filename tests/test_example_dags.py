"""The example DAGs: a fast import check, and every DAG through ``airflow dags test`` against the emulator.

The ``dags``-marked tests share one module fixture that runs all DAGs at once, each in its own
temporary Airflow home cloned from one database migrated once per session; ``scripts/demo.py``
provides the helpers, so ``make demo`` and these tests run DAGs the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.emulator.scripts import entity_ids
from tests.compat import dag_bag
from tests.dag_runs import REPO, demo, explain, run_in_parallel

EXAMPLE_DAGS = {
    "example_coze_copy": ("wait_for_copy", "copy_task_id", "demo-copy-success"),
    "example_truewatch_export": ("wait_for_export", "action_task_id", "demo-export-ok"),
    "example_truewatch_import": ("wait_for_import", "action_task_id", "demo-import-partial"),
}

#: name → (spec, the emulator task the run waits for)
RUNS: dict[str, tuple[Any, str]] = {
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
    assert set(bag.dag_ids) == set(EXAMPLE_DAGS)
    for dag_id, (sensor_id, id_field, default_id) in EXAMPLE_DAGS.items():
        dag = bag.dags[dag_id]  # not get_dag(): that one reads the metadata database
        assert "example" in dag.tags
        assert dag.params[id_field] == default_id
        sensor = dag.get_task(sensor_id)
        assert sensor.deferrable is True  # type: ignore[attr-defined]
        assert sensor.poke_interval <= 3  # type: ignore[attr-defined]
        assert getattr(sensor, id_field) == f"{{{{ params.{id_field} }}}}"
        assert len(sensor.downstream_task_ids) == 1


@dataclass(frozen=True)
class Run:
    result: Any  # demo.DagResult
    #: The emulator's log of the status requests for the task the run waited for.
    requests: list[dict[str, Any]]


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, taskstatus_emulator: EmulatorServer, migrated_airflow_home: Path
) -> dict[str, Run]:
    """Every run of RUNS, in parallel: each in a clone of the migrated home, so SQLite is never shared."""
    taskstatus_emulator.reset()
    for task_id in ("dags-timeout", "dags-timeout-soft"):
        taskstatus_emulator.set_task("coze", task_id, [{"task_status": "in_progress"}])

    def e2e_env(name: str, spec: Any, env: dict[str, str]) -> None:
        if spec.dag_id.startswith("e2e_"):
            env["AIRFLOW__CORE__DAGS_FOLDER"] = str(E2E_DAGS)
            env["AIRFLOW_CONN_COZE_TIMEOUT_ACCOUNT"] = env["AIRFLOW_CONN_COZE_DEFAULT"]

    specs = {name: spec for name, (spec, _) in RUNS.items()}
    results = run_in_parallel(specs, tmp_path_factory, taskstatus_emulator, migrated_airflow_home, e2e_env)
    return {
        name: Run(results[name], taskstatus_emulator.requests(task_id=task_id))
        for name, (_, task_id) in RUNS.items()
    }


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
