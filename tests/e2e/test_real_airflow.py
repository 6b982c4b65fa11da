"""End to end on real Airflow processes against the emulator, on Airflow 3 and on Airflow 2.11.

``dag.test()`` / ``airflow dags test`` run a trigger's first event inline: they never exercise a
deferred task resumed by the scheduler, a sensor timeout reached while deferred, or a triggerer that
dies mid-wait. These tests do, with the real processes started by the ``real_airflow`` fixture
(``conftest.py``: SQLite, LocalExecutor, everything on 127.0.0.1, ready in well under a minute):
api-server, scheduler, dag-processor and triggerer on Airflow 3; scheduler and triggerer on 2.11.
The scenarios and their assertions are the same on both: every outcome checked here is one the
package promises on every release.

They run in ``make test``. Skip them locally with the one flag::

    pytest -m "not e2e"

The runs of the first scenarios are started together (the ``runs`` fixture) and each test waits for
its own; the triggerer-restart test runs alone after them, as it stops the triggerer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_taskstatus.emulator.scripts import entity_ids
from airflow_provider_taskstatus.emulator.server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY
from tests.real_airflow import TIMEOUT_ACCOUNT_TOKEN, RealAirflow

pytestmark = pytest.mark.e2e

SENSOR = "wait"  # the sensor's task id in every E2E DAG
DEFERRED = "Pausing task as DEFERRED"  # the task log line when the sensor defers (2.11 and 3.x alike)
TRIGGER_TIMEOUT = "did not finish within the sensor timeout"  # the trigger's own timeout event
IN_PROGRESS = {"task_status": "in_progress"}


@dataclass
class Scenario:
    """One DAG run waiting for one scripted emulator task."""

    dag_id: str
    api: str
    remote_id: str
    steps: list[dict[str, Any]]
    run_id: str = ""

    def start(self, airflow: RealAirflow) -> Scenario:
        """Script the emulator task, then trigger the DAG run that waits for it."""
        airflow.emulator.set_task(self.api, self.remote_id, self.steps)
        param = "copy_task_id" if self.api == "coze" else "action_task_id"
        self.run_id = airflow.trigger(self.dag_id, {param: self.remote_id})
        return self

    def requests(self, airflow: RealAirflow) -> list[dict[str, Any]]:
        """The status requests the emulator answered for this scenario's remote task."""
        return airflow.emulator.requests(api=self.api, task_id=self.remote_id)

    def finish(self, airflow: RealAirflow) -> tuple[str, dict[str, dict[str, Any]]]:
        """Wait (bounded) for the run to end; return its state and its task instances by task id."""
        state = airflow.wait_for_run(self.dag_id, self.run_id)
        return state, airflow.task_instances(self.dag_id, self.run_id)

    def sensor_log(self, airflow: RealAirflow) -> str:
        """The sensor's task log, including the part its trigger wrote in the triggerer."""
        return airflow.task_log(self.dag_id, self.run_id, SENSOR)


def _states(tis: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    return {task_id: ti["state"] for task_id, ti in tis.items()}


@pytest.fixture(scope="module")
def runs(real_airflow: RealAirflow) -> dict[str, Scenario]:
    """The runs of the first scenarios, started at once so their waits overlap."""
    scenarios = {
        "transient": Scenario(
            "e2e_coze",
            "coze",
            "e2e-coze-transient",
            [
                IN_PROGRESS,  # the sensor's first poke (on the worker): it defers
                {"http_status": 503, "repeat": 2},  # a trigger poll: retried within the request...
                {"code": 4013},  # ...then rate limited: that poll failed, the wait goes on
                IN_PROGRESS,
                {"task_status": "successful"},
            ],
        ),
        "remote_failure": Scenario(
            "e2e_truewatch",
            "truewatch",
            "e2e-tw-import-error",
            [
                # A few polls first: a trigger firing at once can meet apache/airflow#72716 (a
                # resumed task failed by a late report of its deferral), which is not ours to test.
                {"status": "running", "repeat": 3},
                {"status": "error", "errorCode": "ft.ImportFailed", "message": "bad zip"},
            ],
        ),
        "timeout": Scenario("e2e_coze_timeout", "coze", "e2e-coze-forever-hard", [IN_PROGRESS]),
        "timeout_soft_fail": Scenario(
            "e2e_coze_timeout_soft_fail", "coze", "e2e-coze-forever-soft", [IN_PROGRESS]
        ),
        "reschedule_dead_api": Scenario(
            "e2e_coze_reschedule", "coze", "e2e-coze-reschedule-dead", [{"http_status": 503}]
        ),
        "reschedule_recovers": Scenario(
            "e2e_coze_reschedule",
            "coze",
            "e2e-coze-reschedule-recovers",
            [
                {"http_status": 503, "repeat": 2},
                IN_PROGRESS,  # a clean poll resets the count...
                {"http_status": 503, "repeat": 2},  # ...so two more failures do not end the wait
                {"task_status": "successful"},
            ],
        ),
    }
    return {name: scenario.start(real_airflow) for name, scenario in scenarios.items()}


def test_success_after_transient_faults(real_airflow: RealAirflow, runs: dict[str, Scenario]) -> None:
    scenario = runs["transient"]

    state, tis = scenario.finish(real_airflow)

    assert state == "success", _states(tis)
    assert _states(tis) == {SENSOR: "success", "use_copy": "success"}
    assert tis[SENSOR]["try_number"] == 1  # the faults were ridden out, not retried by Airflow
    assert DEFERRED in scenario.sensor_log(real_airflow)
    # The sensor's XCom (the copy task's data) reached the downstream task.
    target = entity_ids(scenario.remote_id)["target_entity_id"]
    assert real_airflow.xcom(scenario.dag_id, scenario.run_id, "use_copy") == f"copied to {target}"
    # Every scripted answer was consumed once, in order, and nothing polled after success.
    assert [r["http_status"] for r in scenario.requests(real_airflow)] == [200, 503, 503, 429, 200, 200]


def test_reschedule_mode_gives_up_after_the_failure_budget(
    real_airflow: RealAirflow, runs: dict[str, Scenario]
) -> None:
    scenario = runs["reschedule_dead_api"]

    state, tis = scenario.finish(real_airflow)

    log = scenario.sensor_log(real_airflow)
    assert state == "failed", _states(tis)
    # Three polls, each a run of its own after a reschedule: the count carried over between them.
    assert [r["http_status"] for r in scenario.requests(real_airflow)] == [503, 503, 503], log
    assert "Poll failed (2 of 3 allowed in a row)" in log
    assert "Gave up after 3 consecutive failed polls" in log


def test_reschedule_mode_resets_the_budget_after_a_clean_poll(
    real_airflow: RealAirflow, runs: dict[str, Scenario]
) -> None:
    scenario = runs["reschedule_recovers"]

    state, tis = scenario.finish(real_airflow)

    assert state == "success", _states(tis)
    assert [r["http_status"] for r in scenario.requests(real_airflow)] == [503, 503, 200, 503, 503, 200]


def test_remote_failure_fails_without_retry_and_keeps_the_key_out_of_logs(
    real_airflow: RealAirflow, runs: dict[str, Scenario]
) -> None:
    scenario = runs["remote_failure"]

    state, tis = scenario.finish(real_airflow)

    assert state == "failed"
    # retries=1 on the sensor, yet no second try: a remote failure is final.
    assert _states(tis) == {SENSOR: "failed", "use_content": "upstream_failed"}
    assert tis[SENSOR]["try_number"] == 1
    assert len(scenario.requests(real_airflow)) == 4  # the poke, then trigger polls until the error
    log = scenario.sensor_log(real_airflow)
    assert DEFERRED in log
    assert "AirflowFailException" in log
    assert "errorCode ft.ImportFailed: bad zip (traceId: " in log
    assert DEFAULT_TRUEWATCH_KEY not in log
    assert DEFAULT_TRUEWATCH_KEY not in real_airflow.log_path("triggerer").read_text(errors="replace")


def test_sensor_timeout_while_deferred_fails_without_retry(
    real_airflow: RealAirflow, runs: dict[str, Scenario]
) -> None:
    scenario = runs["timeout"]

    state, tis = scenario.finish(real_airflow)

    assert state == "failed"
    assert _states(tis) == {SENSOR: "failed", "after": "upstream_failed"}
    assert tis[SENSOR]["try_number"] == 1  # AirflowSensorTimeout: retries=1 does not apply
    log = scenario.sensor_log(real_airflow)
    assert DEFERRED in log
    assert "AirflowSensorTimeout" in log
    assert TRIGGER_TIMEOUT in log
    _assert_polled_for(scenario.requests(real_airflow), seconds=8)


def test_sensor_timeout_with_soft_fail_skips(real_airflow: RealAirflow, runs: dict[str, Scenario]) -> None:
    scenario = runs["timeout_soft_fail"]

    state, tis = scenario.finish(real_airflow)

    assert state == "success"  # a run whose tasks were skipped succeeds
    assert _states(tis) == {SENSOR: "skipped", "after": "skipped"}
    assert tis[SENSOR]["try_number"] == 1
    assert TRIGGER_TIMEOUT in scenario.sensor_log(real_airflow)
    _assert_polled_for(scenario.requests(real_airflow), seconds=8)


def _assert_polled_for(requests: list[dict[str, Any]], seconds: float) -> None:
    """Polled about once a second until the timeout, then stopped (the script never finishes)."""
    offsets = [round(r["time"] - requests[0]["time"], 2) for r in requests]
    assert seconds * 0.5 <= len(requests) <= seconds * 2 + 2, offsets
    assert seconds - 2 <= offsets[-1] <= seconds + 2, offsets


def test_triggerer_killed_mid_wait_resumes_and_keeps_the_deadline(real_airflow: RealAirflow) -> None:
    # About 20 s of polling before success. Only requests consume steps, so the script lasts as
    # many polls as it says, however long the triggerer is away.
    resumed = Scenario(
        "e2e_coze",
        "coze",
        "e2e-coze-triggerer-restart",
        [{**IN_PROGRESS, "repeat": 20}, {"task_status": "successful"}],
    ).start(real_airflow)
    # Never finishes: its 30 s sensor timeout runs out after the restart (a triggerer takes up to
    # ~10 s to start on a loaded 2-core machine: 20 s left too thin a margin).
    timed_out = Scenario("e2e_coze_timeout_30s", "coze", "e2e-coze-restart-forever", [IN_PROGRESS]).start(
        real_airflow
    )
    for scenario in (resumed, timed_out):
        real_airflow.wait_for_task_state(scenario.dag_id, scenario.run_id, SENSOR, "deferred")
        _wait_for_requests(real_airflow, scenario, 4)  # the poke and a few polls from the triggerer

    real_airflow.kill("triggerer")  # SIGKILL to its process group: no clean shutdown
    try:
        waiting = (resumed, timed_out)
        at_kill = [len(s.requests(real_airflow)) for s in waiting]
        time.sleep(4)
        in_gap = [len(s.requests(real_airflow)) - n for s, n in zip(waiting, at_kill, strict=True)]
        states = [real_airflow.task_instances(s.dag_id, s.run_id)[SENSOR]["state"] for s in waiting]
    finally:  # whatever happens, the later tests need a triggerer
        restarted_at = time.time()
        real_airflow.start("triggerer")
    assert max(in_gap) <= 1, in_gap  # nobody polled without a triggerer (one may have been in flight)
    assert states == ["deferred", "deferred"]

    state, tis = resumed.finish(real_airflow)

    assert state == "success", _states(tis)
    assert _states(tis) == {SENSOR: "success", "use_copy": "success"}
    assert tis[SENSOR]["try_number"] == 1  # the wait resumed in the new triggerer, not a new try
    target = entity_ids(resumed.remote_id)["target_entity_id"]
    assert real_airflow.xcom(resumed.dag_id, resumed.run_id, "use_copy") == f"copied to {target}"
    requests = resumed.requests(real_airflow)
    assert any(r["time"] > restarted_at for r in requests)  # the new triggerer polled
    assert 21 <= len(requests) <= 23, len(requests)  # 20 × in_progress, then successful

    state, tis = timed_out.finish(real_airflow)

    assert state == "failed"
    assert _states(tis) == {SENSOR: "failed", "after": "upstream_failed"}
    assert tis[SENSOR]["try_number"] == 1
    # The new triggerer kept the original deadline: the trigger itself reported the timeout, 30 s
    # after the wait began, not 30 s after the restart.
    assert TRIGGER_TIMEOUT in timed_out.sensor_log(real_airflow)
    requests = timed_out.requests(real_airflow)
    assert any(r["time"] > restarted_at for r in requests)
    offsets = [round(r["time"] - requests[0]["time"], 2) for r in requests]
    assert offsets[-1] <= 31, offsets


def _wait_for_requests(airflow: RealAirflow, scenario: Scenario, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(scenario.requests(airflow)) < count:
        assert time.monotonic() < deadline, (
            f"{scenario.remote_id}: {len(scenario.requests(airflow))} requests"
        )
        time.sleep(0.2)


def test_no_secret_in_any_log(real_airflow: RealAirflow, runs: dict[str, Scenario]) -> None:
    """Task, trigger, DAG-processing and process logs never contain a connection's secret."""
    for scenario in runs.values():
        scenario.finish(real_airflow)
    logs = real_airflow.all_logs()
    assert any("task_id=wait" in str(path) for path in logs)  # the sensors' logs are among them
    leaks = [
        (str(path), secret)
        for path, text in logs.items()
        for secret in (DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY, TIMEOUT_ACCOUNT_TOKEN)
        if secret in text
    ]
    assert leaks == []
