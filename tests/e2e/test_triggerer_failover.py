"""End to end: two triggerers share a mapped task's deferred sensors; one is SIGKILLed mid-wait.

How Airflow places triggers (``Trigger.assign_unassigned`` in airflow/models/trigger.py, called by
every triggerer about once a second from ``load_triggers`` in airflow/jobs/triggerer_job_runner.py;
2.11 and 3.x alike): a triggerer takes the triggers that are unassigned, or assigned to a triggerer
whose heartbeat is older than ``[triggerer] triggerer_health_check_threshold`` (5 s here), until it
holds its capacity (``--capacity``; default ``[triggerer] capacity`` on 3.x, ``default_capacity`` on
2.11, 1000). Nothing rebalances triggers between live triggerers. So the spread is made
deterministic by the order of starts: the deployment's triggerer is stopped, the second one (capacity
:data:`SECOND_TRIGGERER_CAPACITY`) takes the first triggers alone, and the first, restarted, takes
the rest. Then the second is SIGKILLed: its triggers must move to the first (its job id in the
trigger table), be polled from the first's connections, and end right, without a retry.

This module has a deployment of its own (the ``real_airflow`` fixture is module-scoped); it still
leaves it as it found it: the first triggerer running, the second stopped.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from airflow_provider_taskstatus.emulator.scripts import entity_ids
from tests.real_airflow import RealAirflow
from tests.real_airflow.settings import HEALTH_CHECK_THRESHOLD, SECOND_TRIGGERER_CAPACITY

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_coze_failover"
SENSOR = "wait"
#: Twice what the second triggerer may hold: each triggerer holds half of the waits.
REMOTE_IDS = [f"e2e-failover-{i}" for i in range(2 * SECOND_TRIGGERER_CAPACITY)]
IN_PROGRESS = {"task_status": "in_progress"}
SUCCESSFUL = {"task_status": "successful"}
POLLED = "is in_progress"  # the trigger's log line for each poll
FIRST, SECOND = "triggerer", "triggerer-2"

T = TypeVar("T")
TaskInstances = dict[int, dict[str, Any]]


def _wait_for(what: str, probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 90.0) -> T:
    """Call ``probe`` until ``done`` holds for its value; return that value, or fail with the last one."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s; last: {value!r}")
        time.sleep(0.3)


def _holders(tis: TaskInstances) -> dict[int, int | None]:
    """Map index → the job id of the triggerer holding its trigger (None: deferred, held by none)."""
    return {i: ti["triggerer_id"] for i, ti in sorted(tis.items())}


def _port(poll: dict[str, Any]) -> int:
    """The client port a poll came from (its ``peer`` is ``ip:port``)."""
    return int(poll["peer"].rsplit(":", 1)[1])


def test_a_killed_triggerers_waits_move_to_the_other_and_end_right(real_airflow: RealAirflow) -> None:
    airflow = real_airflow
    n = len(REMOTE_IDS)
    for remote_id in REMOTE_IDS:  # in progress until the test flips them
        airflow.emulator.set_task("coze", remote_id, [IN_PROGRESS])
    run_id = ""
    #: The local ports of every connection to the emulator each triggerer held while the test looked.
    ports: dict[str, set[int]] = {FIRST: set(), SECOND: set()}

    def polls(remote_id: str) -> list[dict[str, Any]]:
        return airflow.emulator.requests(api="coze", task_id=remote_id)

    def look_at_ports() -> None:
        """Note the connections of the live triggerers (at every look, so that none goes unseen)."""
        for name in ports:
            if name in airflow.processes and name not in airflow.stopped:
                ports[name] |= airflow.client_ports(name, airflow.emulator.port)

    def mapped() -> TaskInstances:
        look_at_ports()
        return airflow.driver.mapped_task_instances(DAG_ID, run_id, SENSOR)

    def poll_counts(remote_ids: list[str], since: float = 0.0) -> list[int]:
        look_at_ports()
        return [sum(p["time"] > since for p in polls(r)) for r in remote_ids]

    def all_deferred(tis: TaskInstances) -> bool:
        return len(tis) == n and all(ti["state"] == "deferred" for ti in tis.values())

    airflow.stop(FIRST)
    try:
        second = airflow.start_triggerer(SECOND)
        run_id = airflow.trigger(DAG_ID, {"copy_task_ids": REMOTE_IDS})

        # Alone, the second triggerer takes as many triggers as its capacity allows, no more.
        tis = _wait_for(
            "the second triggerer holds its capacity",
            mapped,
            lambda tis: all_deferred(tis) and list(_holders(tis).values()).count(second) == n // 2,
        )
        assert sorted(_holders(tis).values(), key=str) == [second] * (n // 2) + [None] * (n // 2)

        # The first, restarted, takes the rest: each triggerer holds half of the waits.
        first = airflow.start_triggerer(FIRST)
        tis = _wait_for(
            "every trigger held by a triggerer",
            mapped,
            lambda tis: all_deferred(tis) and None not in _holders(tis).values(),
        )
        holders = _holders(tis)
        moved = [REMOTE_IDS[i] for i, job in holders.items() if job == second]
        kept = [REMOTE_IDS[i] for i, job in holders.items() if job == first]
        assert len(moved) == len(kept) == n // 2, holders

        # Mid-wait: each triggerer polled each of its waits at least twice (the first request of a
        # remote task is the sensor's poke, on the worker, before it deferred).
        _wait_for(
            "every wait polled twice by its triggerer",
            lambda: poll_counts(REMOTE_IDS),
            lambda counts: min(counts) >= 3,
        )
        # A last look at the second's connections: every one it polled through is still open
        # (the package keeps its connections alive between polls), one it opens later is not seen.
        looked_at = time.time()
        look_at_ports()
        killed_at = time.time()
        airflow.kill(SECOND)  # SIGKILL to its whole session (on 3.x, the trigger runner too)
        assert airflow.session_pids(SECOND) == []

        # Its waits move to the first once its heartbeat is older than the threshold.
        tis = _wait_for(
            "the killed triggerer's triggers held by the survivor",
            mapped,
            lambda tis: all_deferred(tis) and set(_holders(tis).values()) == {first},
            timeout=HEALTH_CHECK_THRESHOLD + 30,
        )
        _wait_for(
            "the moved waits polled twice by the survivor",
            lambda: poll_counts(moved, since=killed_at),
            lambda counts: min(counts) >= 2,
        )
        seen = {r: polls(r) for r in REMOTE_IDS}
        look_at_ports()  # a last look at the first's connections, after the polls in `seen`
    finally:  # leave the deployment as found: the first triggerer running, the second stopped
        if FIRST in airflow.stopped:
            airflow.start(FIRST)
        if SECOND in airflow.processes and SECOND not in airflow.stopped:
            airflow.stop(SECOND)

    # Each poll came from the triggerer that held the wait, told by the client port of its connection:
    # the moved waits from the second until it was killed, then from the first (never both at once:
    # no wait was held twice); the kept ones from the first throughout, polled on as the other died
    # (the moved ones waited for the takeover: about the health-check threshold).
    assert ports[FIRST] and ports[SECOND] and not ports[FIRST] & ports[SECOND], ports
    for remote_id in moved:
        before = {_port(p) for p in seen[remote_id][1:] if p["time"] < looked_at}
        after = {_port(p) for p in seen[remote_id] if p["time"] > killed_at}
        assert before and before <= ports[SECOND], (remote_id, before, ports)
        assert after and after <= ports[FIRST], (remote_id, after, ports)
    for remote_id in kept:
        times = [p["time"] for p in seen[remote_id][1:]]
        assert {_port(p) for p in seen[remote_id][1:]} <= ports[FIRST], (remote_id, ports)
        gaps = [b - a for a, b in itertools.pairwise(times) if b > killed_at - 2]
        assert gaps and max(gaps) < HEALTH_CHECK_THRESHOLD - 1, (remote_id, gaps)

    # Every wait ends right: flipped to successful, each is polled once more and resumes its task in
    # its first try (a move to another triggerer is not a retry; the sensor has retries=1).
    counts = {}
    for remote_id in REMOTE_IDS:
        counts[remote_id] = len(polls(remote_id))
        airflow.emulator.set_task("coze", remote_id, [SUCCESSFUL])
    state = airflow.wait_for_run(DAG_ID, run_id)
    tis = airflow.driver.mapped_task_instances(DAG_ID, run_id, SENSOR)
    assert state == "success", tis
    assert {i: (ti["state"], ti["try_number"]) for i, ti in tis.items()} == {
        i: ("success", 1) for i in range(n)
    }
    assert {r: len(polls(r)) - counts[r] for r in REMOTE_IDS} == dict.fromkeys(REMOTE_IDS, 1)
    # Each sensor's XCom (its copy's data) reached the downstream task, in map-index order.
    assert airflow.task_instances(DAG_ID, run_id)["collect"]["state"] == "success"
    expected = [entity_ids(r)["target_entity_id"] for r in REMOTE_IDS]
    assert airflow.xcom(DAG_ID, run_id, "collect") == expected

    # The triggerers' own logs of each wait (one file per triggerer job, next to the task's log):
    # a moved wait was polled by both, and ended in the survivor; a kept one saw the first only.
    for map_index, remote_id in enumerate(REMOTE_IDS):
        folder = airflow.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={SENSOR}"
        parts = {
            int(p.name.rsplit(".", 2)[-2]): p.read_text(errors="replace")
            for p in (folder / f"map_index={map_index}").glob("attempt=1.log.trigger.*.log")
        }
        assert sorted(parts) == sorted({first, second} if remote_id in moved else {first}), remote_id
        assert "succeeded" in parts[first], parts[first]
        assert parts[first].count(POLLED) >= 2, parts[first]
        if remote_id in moved:
            assert parts[second].count(POLLED) >= 2, parts[second]
            assert "succeeded" not in parts[second], parts[second]
