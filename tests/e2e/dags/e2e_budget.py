"""E2E DAG: many TrueWatch waits on one API key, deferred and in poke mode, for the budget test.

Used by tests/e2e/test_budget_at_scale.py (run with ``make scale``): the emulator enforces
TrueWatch's documented 20 requests a minute per key, and every sensor polls through the one
``truewatch_default`` connection, paced by default. No sensor may fail because of rate limiting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_taskstatus.sensors.truewatch import TrueWatchActionSensor

#: The remote tasks finish within minutes; rate-limited polls must not end a wait before then.
TIMEOUT = 1800


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"deferred_ids": [], "poke_ids": []},
    tags=["e2e"],
)
def e2e_truewatch_budget() -> None:
    @task
    def deferred_ids(**context: Any) -> list[str]:
        return list(context["params"]["deferred_ids"])

    @task
    def poke_ids(**context: Any) -> list[str]:
        return list(context["params"]["poke_ids"])

    TrueWatchActionSensor.partial(task_id="deferred", deferrable=True, timeout=TIMEOUT).expand(
        action_task_id=deferred_ids()
    )
    TrueWatchActionSensor.partial(task_id="poked", mode="poke", timeout=TIMEOUT).expand(
        action_task_id=poke_ids()
    )


e2e_truewatch_budget()
