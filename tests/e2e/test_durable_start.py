"""End to end: a copy operator's try ends mid-wait, and the retry resumes the copy it started.

On Airflow 3.3 the operator writes the started copy task's id to the task state store as soon as the
start call answers; the next try of the task instance reads it and waits on that copy instead of
starting another (``operators/durable.py``). Two ways a try ends mid-wait, on the real processes of
the ``real_airflow`` fixture (``conftest.py``) against the emulator, which counts the copies started:

* an ``execution_timeout`` shorter than the copy lasts, waiting in the worker and in the triggerer
  (the trigger reports the execution timeout itself);
* the task's process SIGKILLed while it polls (found by the client port of its last poll): its
  supervisor (3.x) or the scheduler's zombie check (2.11) fails the try, and Airflow retries it.

Each time the copy is started once, the second try succeeds with the copy's final data, and the copy
task's record is gone from the store. Airflow 2.11 has no task state store: there the same runs show
the documented behaviour, a retry that starts a second copy, with a log line saying so.

The operator saves its "Coze workspace" link before it waits: the REST API serves it mid-wait, in a
worker and deferred, and after the retry (on 2.11 a webserver is started for it: links are resolved
there, by the link's own code).

The runs are started together (the ``runs`` fixture) so that their waits overlap; the tests that
must catch a run mid-wait come first. About 70 s a release, a third of it the deployment's start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psutil
import pytest
import requests
from packaging.version import Version

from airflow_provider_taskstatus.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_VERSION
from airflow_provider_taskstatus.operators.durable import STATE_KEY
from tests.e2e.dags.e2e_durable import EXECUTION_TIMEOUT, TO_WORKSPACE
from tests.real_airflow import RealAirflow
from tests.real_airflow.settings import COZE_CONSOLE_URL, STARTUP_TIMEOUT

pytestmark = pytest.mark.e2e

TASK = "copy"  # the operator's task id in every DAG of e2e_durable.py
COZE = "coze"
LINK = "Coze workspace"
LINK_URL = f"{COZE_CONSOLE_URL}/space/{TO_WORKSPACE}/develop"
DEFERRED = "Pausing task as DEFERRED"
RESUMING = "Resuming Coze task {}, started by an earlier try"
NO_STORE = "keeps no task state (3.3+ does): if this task is retried, the retry starts a new Coze task"


#: Whether the release has a task state store (3.3+): a retry resumes the copy, or starts another.
DURABLE = Version(AIRFLOW_VERSION).release[:2] >= (3, 3)


@dataclass
class Run:
    """One DAG run of a copy operator; its start call takes a plan of its own (matched on entity_id)."""

    dag_id: str
    entity_id: str
    #: The lifecycle of the copy task the first start creates; a later one (2.11) gets the default.
    steps: list[dict[str, Any]]
    run_id: str = ""

    def start(self, airflow: RealAirflow) -> Run:
        airflow.emulator.plan_starts(COZE, [{"match": {"entity_id": self.entity_id}, "steps": self.steps}])
        self.run_id = airflow.trigger(self.dag_id, {"entity_id": self.entity_id})
        return self

    def copies(self, airflow: RealAirflow) -> list[dict[str, Any]]:
        """The copy tasks this run's start calls created, oldest first."""
        return [s for s in airflow.emulator.started(COZE) if s["entity_id"] == self.entity_id]

    def polls(self, airflow: RealAirflow, copy_id: str) -> list[dict[str, Any]]:
        """The status requests for the copy task ``copy_id``, oldest first."""
        return airflow.emulator.requests(api=COZE, task_id=copy_id, call="status")

    def polled_copy(self, airflow: RealAirflow) -> str | None:
        """The id of the first copy this run started, once it has been polled; None before."""
        copies = self.copies(airflow)
        return copies[0]["task_id"] if copies and self.polls(airflow, copies[0]["task_id"]) else None

    def finish(self, airflow: RealAirflow) -> tuple[str, dict[str, Any]]:
        """Wait for the run to end; return its state and the operator's task instance."""
        state = airflow.wait_for_run(self.dag_id, self.run_id, timeout=180)
        return state, airflow.task_instances(self.dag_id, self.run_id)[TASK]

    def log(self, airflow: RealAirflow, attempt: int) -> str:
        """The log of one try (with the trigger's part, if it deferred)."""
        return airflow.task_log(self.dag_id, self.run_id, TASK, attempt=attempt)


def in_progress_for(seconds: float) -> list[dict[str, Any]]:
    """A copy task's lifecycle: in progress for ``seconds`` after its first poll, then successful."""
    return [{"task_status": "in_progress", "seconds": seconds}, {"task_status": "successful"}]


@pytest.fixture(scope="module")
def runs(real_airflow: RealAirflow) -> dict[str, Run]:
    """The module's runs, started together; on 2.11 a webserver first, for the links."""
    if not AIRFLOW_V_3_0_PLUS:
        _start_webserver(real_airflow)
    # Polled every 2 s, in progress for 30 s after the first poll: the first try times out ~18 s
    # after that poll (20 s after the start); the retry, up about 2 s later, finds the copy in progress
    # (~10 s of margin) and sees it end ~10 s before its own timeout. Measured on 2 cores, both modes.
    lifetime = EXECUTION_TIMEOUT + 10
    plan = {
        "timeout": Run("e2e_durable_timeout", "wf-durable-timeout", in_progress_for(lifetime)),
        "timeout_deferred": Run(
            "e2e_durable_timeout_deferred", "wf-durable-deferred", in_progress_for(lifetime)
        ),
        # Long enough for the tests to look at it mid-wait, kill its process, and for the retry to
        # resume it (the kill comes ~5 s after the first poll; the retry ~2 s later on 3.3, ~8 s on
        # 2.11, whose zombie check runs every 10 s).
        "kill": Run("e2e_durable_kill", "wf-durable-kill", in_progress_for(lifetime)),
    }
    return {name: run.start(real_airflow) for name, run in plan.items()}


def _start_webserver(airflow: RealAirflow) -> None:
    """Airflow 2.11's webserver, on the deployment's API port, healthy, every request an admin's.

    The REST API lets anonymous requests in (``[api] auth_backends`` in the deployment's settings);
    FAB then gives them the public role, made Admin here in the Flask config Airflow created.
    """
    with (airflow.home / "webserver_config.py").open("a") as config:
        config.write('\nAUTH_ROLE_PUBLIC = "Admin"\n')
    airflow.start("webserver")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            if airflow.http.get(f"{airflow.api_url}/health", timeout=5).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"webserver not healthy after {STARTUP_TIMEOUT:.0f} s")
        airflow.check_alive()
        time.sleep(1)


def _wait_for(what: str, probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.2)
    return value


def _store(airflow: RealAirflow, run: Run) -> dict[str, Any]:
    """The task instance's task state store (3.3), key → value, through the REST API."""
    path = f"/api/v2/dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances/{TASK}/state-store"
    return {e["key"]: e["value"] for e in airflow.api("GET", path)["task_state_store"]}


def _assert_final_data(result: Any, copy_id: str, entity_id: str) -> None:
    """The XCom return value is the copy task's final data, as its last status answer had it."""
    assert isinstance(result, dict), result
    assert result["task_id"] == copy_id, result
    assert result["task_status"] == "successful", result
    assert (result["source_entity_id"], result["target_workspace_id"]) == (entity_id, TO_WORKSPACE), result


def test_the_link_is_served_mid_wait(real_airflow: RealAirflow, runs: dict[str, Run]) -> None:
    """The operator saved its link before waiting: the REST API serves it while the first try polls in
    a worker, and while it is deferred."""
    airflow = real_airflow
    for name, waiting in (("kill", "running"), ("timeout_deferred", "deferred")):
        run = runs[name]
        copy = _wait_for(f"{name}: the copy polled", lambda run=run: run.polled_copy(airflow))
        airflow.wait_for_task_state(run.dag_id, run.run_id, TASK, waiting)
        links = airflow.driver.extra_links(run.dag_id, run.run_id, TASK)
        ti = airflow.task_instances(run.dag_id, run.run_id)[TASK]
        assert (ti["state"], ti["try_number"]) == (waiting, 1), name
        assert run.polls(airflow, copy)[-1]["time"] > time.time() - 10, f"{name}: still polled"
        assert links == {LINK: LINK_URL}, name


def test_worker_killed_mid_wait_the_retry_resumes_the_copy(
    real_airflow: RealAirflow, runs: dict[str, Run]
) -> None:
    airflow, run = real_airflow, runs["kill"]
    copy_id = _wait_for("the copy polled", lambda: run.polled_copy(airflow))
    _wait_for("two polls of the copy", lambda: len(run.polls(airflow, copy_id)) >= 2)
    ti = airflow.task_instances(run.dag_id, run.run_id)[TASK]
    assert (ti["state"], ti["try_number"]) == ("running", 1)
    if DURABLE:  # the copy's id is in the task instance's state store, for this series of tries
        record = _store(airflow, run)[STATE_KEY]
        assert (record["task_id"], record["series"], record["conn_id"]) == (copy_id, 1, "coze_console")

    # The process that polls: the one holding the connection the last poll came through. It is the
    # task's own process, forked by the one that supervises it.
    port = _port(run.polls(airflow, copy_id)[-1])
    connections = airflow.client_connections("scheduler", airflow.emulator.port)
    [pid] = [pid for pid, ports in connections.items() if port in ports]
    task_process = psutil.Process(pid)
    title = " ".join(task_process.cmdline()).strip()
    if AIRFLOW_V_3_0_PLUS:  # the task runner, named by the try's id
        assert title == f"airflow worker -- {ti['id']}", title
    else:  # the raw task process of ``airflow tasks run``
        assert title.startswith(f"airflow task runner: {run.dag_id} {TASK} {run.run_id} "), title
    killed_at = time.time()
    task_process.kill()  # SIGKILL: no exception, no finally, no on_kill in the task
    task_process.wait(timeout=10)

    state, ti = run.finish(airflow)

    assert state == "success", ti
    assert (ti["state"], ti["try_number"]) == ("success", 2)
    first_try, second_try = run.log(airflow, 1), run.log(airflow, 2)
    if AIRFLOW_V_3_0_PLUS:  # its supervisor saw it killed, and failed the try (to be retried)
        assert "Process terminated by signal" in first_try and "SIGKILL" in first_try, first_try[-3000:]
    else:  # its ``--local`` parent saw it killed; the scheduler's zombie check failed the try
        assert "Task exited with return code -9" in first_try, first_try[-3000:]
    copies = run.copies(airflow)
    result = airflow.xcom(run.dag_id, run.run_id, TASK)
    # Polled on by the next try, through a connection of its own.
    later = [p for p in run.polls(airflow, copies[-1]["task_id"]) if p["time"] > killed_at]
    assert later and port not in {_port(p) for p in later}
    if DURABLE:
        assert [c["task_id"] for c in copies] == [copy_id], "the retry started no second copy"
        _assert_final_data(result, copy_id, run.entity_id)
        assert RESUMING.format(copy_id) in second_try, second_try[-3000:]
        assert _store(airflow, run) == {}, "the verdict ended the record"
    else:  # no store: the retry started a second copy, as the first try had warned
        assert len(copies) == 2, copies
        _assert_final_data(result, copies[1]["task_id"], run.entity_id)
        assert NO_STORE in first_try and NO_STORE in second_try


@pytest.mark.parametrize("name", ["timeout", "timeout_deferred"])
def test_execution_timeout_mid_wait_the_retry_resumes_the_copy(
    real_airflow: RealAirflow, runs: dict[str, Run], name: str
) -> None:
    airflow, run = real_airflow, runs[name]

    state, ti = run.finish(airflow)

    assert state == "success", ti
    assert (ti["state"], ti["try_number"]) == ("success", 2)
    copies = run.copies(airflow)
    first = copies[0]["task_id"]
    first_try, second_try = run.log(airflow, 1), run.log(airflow, 2)
    # The first try ended on its execution timeout, mid-wait: raised in the worker by Airflow's
    # timer, or reported by the trigger itself (with the copy's last status).
    assert "AirflowTaskTimeout" in first_try, first_try[-3000:]
    if name == "timeout_deferred":
        assert DEFERRED in first_try and DEFERRED in second_try
        assert f"Coze task '{first}' did not finish within the execution_timeout; last status:" in first_try
    result = airflow.xcom(run.dag_id, run.run_id, TASK)
    assert airflow.driver.extra_links(run.dag_id, run.run_id, TASK) == {LINK: LINK_URL}
    if DURABLE:
        assert [c["task_id"] for c in copies] == [first], "the retry started no second copy"
        _assert_final_data(result, first, run.entity_id)
        assert RESUMING.format(first) in second_try, second_try[-3000:]
        # The copy lasted longer than a try may run.
        changes = airflow.emulator.task_changes(COZE, first)
        done = next(c["time"] for c in changes if c["status"] == "successful")
        assert done - copies[0]["time"] > EXECUTION_TIMEOUT
        assert _store(airflow, run) == {}, "the verdict ended the record"
    else:  # no store: the retry started a second copy, as the first try had warned
        assert len(copies) == 2, copies
        _assert_final_data(result, copies[1]["task_id"], run.entity_id)
        assert NO_STORE in first_try and NO_STORE in second_try


def _port(poll: dict[str, Any]) -> int:
    """The client port a poll came from (its ``peer`` is ``ip:port``)."""
    return int(poll["peer"].rsplit(":", 1)[1])
