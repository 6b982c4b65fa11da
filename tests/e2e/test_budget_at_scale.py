"""At scale on one TrueWatch key: 60 deferred sensors over two triggerers and 10 poke-mode sensors in
worker processes, against an emulator that enforces the documented 20 requests a minute per key.

Twelve processes share the key's budget without knowing of each other (see the README's "Request
budgets"). Every sensor must succeed, none may fail because of rate limiting, and once the rates
have converged the server must reject under 5% of the requests. It takes about ten minutes, so it
runs only when asked: ``make scale`` (Airflow 3.3). The figures go to stdout and, as JUnit
properties, to the report.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_taskstatus.emulator.limits import RateLimits
from airflow_provider_taskstatus.emulator.server import DEFAULT_COZE_TOKEN, EmulatorServer
from tests.real_airflow import TIMEOUT_ACCOUNT_TOKEN, RealAirflow

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("TASKSTATUS_SCALE"), reason="about ten minutes: run with make scale"
    ),
]

DAG_ID = "e2e_truewatch_budget"
BUDGET = 20  # requests a minute per key, as TrueWatch documents
DEFERRED = [f"budget-deferred-{i}" for i in range(60)]
POKED = [f"budget-poked-{i}" for i in range(10)]
#: Each remote task reports running for this long after its first poll, then ok.
RUNNING_FOR = 45.0
#: The rejected share a converged minute stays under.
CONVERGED = 0.05
TRIGGERERS = ("triggerer", "triggerer-b")


@pytest.fixture(scope="module")
def crowded_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealAirflow]:
    """A deployment of its own: two triggerers of 30 triggers each, slots for every sensor, and an
    emulator enforcing the per-key budget."""
    home = tmp_path_factory.mktemp("airflow-budget-home")
    limits = RateLimits(truewatch_per_key=BUDGET, truewatch_per_workspace=200)
    with EmulatorServer(
        coze_tokens=(DEFAULT_COZE_TOKEN, TIMEOUT_ACCOUNT_TOKEN), rate_limits=limits
    ) as emulator:
        airflow = RealAirflow(home, emulator)
        airflow.env.update(
            {
                "AIRFLOW__CORE__PARALLELISM": "32",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "80",
                "AIRFLOW__TRIGGERER__CAPACITY": "30",  # Airflow 3
                "AIRFLOW__TRIGGERER__DEFAULT_CAPACITY": "30",  # Airflow 2.11
            }
        )
        try:
            airflow.run_cli("db", "migrate")
            airflow.start_all()
            airflow.wait_until_ready()  # the first triggerer's job runs: the second one's is the new one
            airflow.start_triggerer(TRIGGERERS[1])
            yield airflow
        finally:
            airflow.stop_all()


def test_sixty_deferred_and_ten_poked_sensors_share_one_key(crowded_airflow: RealAirflow) -> None:
    airflow = crowded_airflow
    emulator = airflow.emulator
    for remote_id in DEFERRED + POKED:
        emulator.set_task(
            "truewatch", remote_id, [{"status": "running", "seconds": RUNNING_FOR}, {"status": "ok"}]
        )
    started = time.time()
    run_id = airflow.trigger(DAG_ID, {"deferred_ids": DEFERRED, "poke_ids": POKED})

    holders: set[int] = set()
    while (state := airflow.run_state(DAG_ID, run_id)) not in ("success", "failed"):
        assert time.time() - started < 1500, f"still {state}"
        tis = airflow.driver.mapped_task_instances(DAG_ID, run_id, "deferred")
        holders |= {ti["triggerer_id"] for ti in tis.values() if ti.get("triggerer_id")}
        airflow.check_alive()
        time.sleep(2)
    ended = time.time()

    deferred = airflow.driver.mapped_task_instances(DAG_ID, run_id, "deferred")
    poked = airflow.driver.mapped_task_instances(DAG_ID, run_id, "poked")
    states = {f"deferred[{i}]": ti["state"] for i, ti in deferred.items()}
    states |= {f"poked[{i}]": ti["state"] for i, ti in poked.items()}
    failed = {name: s for name, s in states.items() if s != "success"}
    figures = _figures(emulator, started, ended, {**_ends(deferred, DEFERRED), **_ends(poked, POKED)})
    print("\n".join(f"{k}: {v}" for k, v in figures.items()))
    assert state == "success" and not failed, (failed, figures)
    assert len(states) == len(DEFERRED) + len(POKED)
    assert all(ti["try_number"] == 1 for ti in [*deferred.values(), *poked.values()])
    assert len(holders) == 2, f"the deferred sensors were held by {holders}, not by both triggerers"
    assert figures["rejected share after convergence"] < CONVERGED, figures


def _ends(tis: dict[int, dict[str, Any]], remote_ids: list[str]) -> dict[str, float]:
    """Remote id → when its Airflow task ended (epoch seconds)."""
    return {remote_ids[i]: _epoch(ti["end_date"]) for i, ti in tis.items() if ti.get("end_date")}


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _figures(
    emulator: EmulatorServer, started: float, ended: float, task_ends: dict[str, float]
) -> dict[str, Any]:
    """Requests per minute against the budget, rejections, convergence and detection delays."""
    log = [r for r in emulator.requests(api="truewatch") if started <= r["time"] <= ended]
    minutes = int((ended - started) // 60) + 1
    offered = [0] * minutes
    rejected = [0] * minutes
    for r in log:
        m = int((r["time"] - started) // 60)
        offered[m] += 1
        rejected[m] += r["limited"] is not None
    full = range(minutes - 1)  # the last minute is partial
    converged_at = next(
        (m for m in full if all(rejected[k] < CONVERGED * offered[k] for k in range(m, minutes - 1))),
        minutes - 1,
    )
    after = [m for m in full if m >= converged_at]
    offered_after = sum(offered[m] for m in after)
    delays = []
    for remote_id, end in task_ends.items():
        changes = emulator.task_changes("truewatch", remote_id)
        first_running = changes[0]["time"]
        delays.append(end - (first_running + RUNNING_FOR))
    delays.sort()
    return {
        "wall time (s)": round(ended - started),
        "requests": len(log),
        "rejected": sum(rejected),
        "rejected share": round(sum(rejected) / max(1, len(log)), 3),
        "requests per minute (offered)": offered,
        "rejected per minute": rejected,
        "converged after (min)": converged_at,
        "rejected share after convergence": round(
            sum(rejected[m] for m in after) / offered_after if offered_after else 0.0, 3
        ),
        "accepted per full minute, max": max((offered[m] - rejected[m] for m in full), default=0),
        "detection delay p50 (s)": round(statistics.median(delays), 1) if delays else None,
        "detection delay p95 (s)": round(delays[int(0.95 * (len(delays) - 1))], 1) if delays else None,
        "detection delay max (s)": round(delays[-1], 1) if delays else None,
    }
