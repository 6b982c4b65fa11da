"""Issue 9's situations as a DAG author meets them: ``airflow dags test`` of ``tests/user_dags``.

Every mode (poke, reschedule, deferrable) follows the same outcome table and failure budget; a
wrong connection type fails before any request; a hanging request cannot push a timeout back; a
string where a boolean belongs fails the DAG's parse.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_taskstatus.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS
from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.emulator.scripts import entity_ids
from tests.dag_runs import REPO, demo, explain, run_in_parallel

USER_DAGS = REPO / "tests" / "user_dags"
INVALID_DAGS = REPO / "tests" / "user_dags_invalid"
MODES = ("poke", "reschedule", "deferrable")

DOWN = [{"http_status": 503, "body": "down"}]
FAILED = [
    {
        "task_status": "failed",
        "failed_reasons": [
            {"entity_id": "9", "entity_name": "kb", "entity_type": "knowledge", "failed_reason": "quota"}
        ],
    }
]
#: In deferrable mode the first poke answers at once, so that the trigger's poll is the one that hangs.
HANGING = {
    "poke": [{"task_status": "in_progress", "delay": 20}],
    "reschedule": [{"task_status": "in_progress", "delay": 20}],
    "deferrable": [{"task_status": "in_progress"}, {"task_status": "in_progress", "delay": 20}],
}
HANGING_TIMEOUT = 5.0


@dataclass(frozen=True)
class Situation:
    dag_id: str
    api: str
    steps: list[dict[str, Any]]
    dags_folder: Path = USER_DAGS

    @property
    def remote_id(self) -> str:
        return self.dag_id.replace("_", "-")


SITUATIONS: dict[str, Situation] = {
    **{f"dead_api_{m}": Situation(f"user_dead_api_{m}", "coze", DOWN) for m in MODES},
    **{f"hanging_{m}": Situation(f"user_hanging_{m}", "coze", HANGING[m]) for m in MODES},
    **{f"never_fail_{m}": Situation(f"user_never_fail_{m}", "coze", FAILED) for m in MODES},
    **{f"soft_fail_{m}": Situation(f"user_soft_fail_{m}", "coze", FAILED) for m in ("poke", "deferrable")},
    "wrong_connection": Situation("user_wrong_connection", "truewatch", [{"status": "running"}]),
    "bad_allow_partial": Situation("user_bad_allow_partial", "truewatch", [], INVALID_DAGS),
}


def quick_start() -> tuple[str, list[str]]:
    """The README's Quick start: its DAG file and its command, exactly as printed."""
    section = (REPO / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    dag_file = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    command = re.search(r"```bash\n(airflow dags test .*?)\n```", section, re.DOTALL)
    assert dag_file is not None, "the Quick start has no python block"
    assert command is not None, "the Quick start has no `airflow dags test` command"
    return dag_file.group(1), shlex.split(command.group(1))


@dataclass(frozen=True)
class Run:
    result: Any  # demo.DagResult
    #: The emulator's log of the status requests for the situation's remote task.
    requests: list[dict[str, Any]]
    #: Every status request the emulator saw during the runs, whatever the task.
    all_requests: list[dict[str, Any]]


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, taskstatus_emulator: EmulatorServer, migrated_airflow_home: Path
) -> dict[str, Run]:
    taskstatus_emulator.reset()
    for situation in SITUATIONS.values():
        if situation.steps:
            taskstatus_emulator.set_task(situation.api, situation.remote_id, situation.steps)
    specs = {
        name: demo.DagRunSpec(s.dag_id, {"task_id": s.remote_id} if s.steps else None)
        for name, s in SITUATIONS.items()
    }
    source, command = quick_start()
    quick_start_folder = tmp_path_factory.mktemp("quick-start")
    (quick_start_folder / "quick_start.py").write_text(source)
    # `airflow dags test <dag_id> --conf <json>` is exactly what demo.run_dag runs.
    assert command[:3] == ["airflow", "dags", "test"] and command[4] == "--conf" and len(command) == 6, (
        command
    )
    specs["quick_start"] = demo.DagRunSpec(command[3], json.loads(command[5]))

    def dags_folder(name: str, spec: Any, env: dict[str, str]) -> None:
        folder = quick_start_folder if name == "quick_start" else SITUATIONS[name].dags_folder
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)

    results = run_in_parallel(
        specs, tmp_path_factory, taskstatus_emulator, migrated_airflow_home, dags_folder
    )
    every = taskstatus_emulator.requests()
    return {
        name: Run(results[name], taskstatus_emulator.requests(task_id=s.remote_id), every)
        for name, s in SITUATIONS.items()
    } | {"quick_start": Run(results["quick_start"], [], every)}


def _sensor_failed(run: Run) -> bool:
    """The run fails with the sensor; a skipped sensor skips ``succeeded`` and the run succeeds."""
    return run.result.state == "failed" and run.result.returned == []


#: Airflow 3.0's dag.test() hands a sensor's first reschedule date over as text, and its own
#: BaseSensorOperator.execute then fails at the second run of the wait (apache/airflow#58777, fixed
#: in 3.1): no rescheduled wait gets past its second poll in `airflow dags test` on 3.0.
RESCHEDULE_BROKEN_IN_DAGS_TEST = pytest.mark.xfail(
    AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS, reason="apache/airflow#58777", strict=True
)


@pytest.mark.dags
@pytest.mark.parametrize(
    "mode", ["poke", pytest.param("reschedule", marks=RESCHEDULE_BROKEN_IN_DAGS_TEST), "deferrable"]
)
def test_a_dead_api_ends_the_wait_after_the_failure_budget_in_every_mode(
    runs: dict[str, Run], mode: str
) -> None:
    run = runs[f"dead_api_{mode}"]
    assert _sensor_failed(run), explain(run.result)
    # max_consecutive_failures=3, max_retries=0: exactly three polls, one failure each.
    assert len(run.requests) == 3, [r["time"] for r in run.requests]
    assert "Gave up after 3 consecutive failed polls" in (run.result.failure or ""), explain(run.result)
    # The count carried over from one poll to the next, also when each poll is a new run of the task.
    assert "Poll failed (2 of 3 allowed in a row)" in run.result.output, explain(run.result)
    assert "Poll failed (1 of 3 allowed in a row)" in run.result.output


@pytest.mark.dags
@pytest.mark.parametrize("mode", MODES)
def test_a_hanging_request_cannot_push_the_timeout_past_the_deadline(
    runs: dict[str, Run], mode: str, record_property: Any
) -> None:
    run = runs[f"hanging_{mode}"]
    assert _sensor_failed(run), explain(run.result)
    assert "did not finish within the sensor timeout" in (run.result.failure or ""), explain(run.result)
    concluded = re.search(r"Wait concluded at (\d+\.\d+), deadline (\d+\.\d+)", run.result.output)
    assert concluded is not None, explain(run.result)
    late = float(concluded.group(1)) - float(concluded.group(2))
    # The deadline is the wait's start (just before its first request) plus the 5 s timeout.
    assert abs(float(concluded.group(2)) - (run.requests[0]["time"] + HANGING_TIMEOUT)) < 1.0
    record_property("late_s", round(late, 3))
    assert late <= 1.0, f"the wait concluded {late:.2f} s after the deadline"


@pytest.mark.dags
@pytest.mark.parametrize("mode", MODES)
def test_never_fail_skips_a_failed_task_with_the_reason_in_every_mode(
    runs: dict[str, Run], mode: str
) -> None:
    run = runs[f"never_fail_{mode}"]
    assert run.result.state == "success", explain(run.result)  # skipped, not failed
    assert run.result.returned == []
    assert "Skipping due to never_fail: Coze copy task 'user-never-fail-" in run.result.output
    assert "knowledge 'kb' (id 9): quota" in run.result.output


@pytest.mark.dags
@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_soft_fail_skips_a_failed_task_with_the_reason(runs: dict[str, Run], mode: str) -> None:
    run = runs[f"soft_fail_{mode}"]
    assert run.result.state == "success", explain(run.result)
    assert run.result.returned == []
    assert "Skipping due to soft_fail: Coze copy task 'user-soft-fail-" in run.result.output
    assert "knowledge 'kb' (id 9): quota" in run.result.output


@pytest.mark.dags
def test_a_coze_connection_given_to_a_truewatch_sensor_fails_before_any_request(runs: dict[str, Run]) -> None:
    run = runs["wrong_connection"]
    assert _sensor_failed(run), explain(run.result)
    assert (
        "Connection 'coze_default' is of type 'coze', but TrueWatchHook needs a 'truewatch' connection"
        in (run.result.failure or "")
    ), explain(run.result)
    assert run.requests == []
    # Nor any other TrueWatch request with a credential TrueWatch does not know (the Coze token).
    assert not any(r["api"] == "truewatch" and not r["auth_valid"] for r in run.all_requests)


@pytest.mark.dags
def test_a_string_for_allow_partial_fails_the_dag_parse(runs: dict[str, Run]) -> None:
    run = runs["bad_allow_partial"]
    assert run.result.returncode != 0
    assert "allow_partial must be True or False, got 'false' (str)" in run.result.output, explain(run.result)
    assert "DagRun Finished" not in run.result.output


@pytest.mark.dags
def test_the_readme_quick_start_runs_as_printed(runs: dict[str, Run]) -> None:
    run = runs["quick_start"]
    assert run.result.state == "success", explain(run.result)
    # `report` printed the copied entity and the import counts of the two seeded tasks.
    assert entity_ids("demo-copy-success")["target_entity_id"] in run.result.output
    assert "{'successCount': 12, 'failCount': 0}" in run.result.output, explain(run.result)
